"""Frankle & Carbin's iterative magnitude pruning with reset to θ₀, as stages: one prune step and
the tickets per round, resumable, the first round shared with one-shot pruning at the same ratio."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import torch

from prunebench.errors import ConfigError
from prunebench.experiment import expand, parse_preset, run_experiment
from prunebench.experiment.stages import PRUNED_DIR, STAGES_DIR
from prunebench.train import load_model

TINY = """
name = "imp"
seeds = [0]
log_test_every_epoch = false
[data]
name = "digits"
val_size = 0
[model]
variant = "resnet20"
width_mult = 0.25
[[methods]]
name = "magnitude"
label = "oneshot-50%"
options = { ratio = 0.5 }
[[methods]]
name = "magnitude"
label = "imp"
options = { ratio = 0.5, iterative_rounds = 3, iterative = "imp" }
[arms]
unpruned = true
winning_ticket = true
random_ticket = true
[recipes.large]
epochs = 1
lr = 0.05
batch_size = 128
[recipes.finetune]
epochs = 1
lr = 0.005
[recipes.lottery]
lrs = [0.05]
"""


def _preset(text: str = TINY) -> object:
    return parse_preset(tomllib.loads(text), "imp.toml")


def test_each_round_is_its_own_stage_chained_on_the_previous_rounds_trained_ticket() -> None:
    plan = expand(_preset())
    kinds = [s.kind for s in plan.stages]
    assert kinds.count("imp_prune") == 2 and kinds.count("prune") == 1  # round 1 is the one-shot 50% run
    assert kinds.count("winning_ticket") == 3 and kinds.count("random_ticket") == 3
    by_id = plan.by_id()
    seen: set[str] = set()
    for s in plan.stages:  # upstream first
        assert set(s.upstream.values()) <= seen
        seen.add(s.id)
    rounds = sorted((s for s in plan.stages if s.kind == "imp_prune"), key=lambda s: s.config["round"])
    [first] = [s for s in plan.stages if s.kind == "prune"]
    assert set(first.methods) == {"oneshot-50%", "imp"}
    previous = first.id
    for s in rounds:
        trained = by_id[s.upstream["trained"]]
        assert trained.kind == "winning_ticket" and trained.upstream["pruned"] == previous
        assert s.upstream["previous"] == previous
        previous = s.id
    arms = {(m, a) for m, a, _, _ in plan.links}
    assert {("imp-r3", "winning_ticket_lr0.05"), ("imp-r3", "random_ticket_lr0.05"), ("imp-r2", "unpruned")} <= arms


def test_imp_rounds_reach_the_compound_sparsity_from_each_trained_ticket_and_resume(tmp_path: Path) -> None:
    from prunebench.prune import get_method
    from prunebench.prune.magnitude import imp_round

    from prunebench.experiment.planning import plan_run

    preset = _preset()
    run_experiment(preset, tmp_path, say=lambda _: None)
    plan = plan_run(preset)
    stages = plan.by_id()
    folder = {sid: next((tmp_path / STAGES_DIR).glob(f"*{sid[:12]}")) for sid in stages}
    [first] = [s for s in plan.stages if s.kind == "prune"]
    rounds = [first] + sorted((s for s in plan.stages if s.kind == "imp_prune"), key=lambda s: s.config["round"])
    masks = [load_model(folder[s.id] / PRUNED_DIR)[1] for s in rounds]
    total = sum(m.numel() for m in masks[0].values())
    for k, m in enumerate(masks, 1):
        kept = sum(int(v.sum()) for v in m.values())
        assert kept / total == pytest.approx(0.5**k, abs=k / total + 1e-3)
        if k > 1:  # survivors only: a weight pruned once never comes back
            assert all(not (m[n] & ~masks[k - 2][n]).any() for n in m)
    # round 3 prunes by the magnitudes of round 2's *trained* winning ticket
    method = get_method("magnitude")
    opts = method.parse_options({"ratio": 0.5, "iterative_rounds": 3, "iterative": "imp"})
    ticket = stages[rounds[2].upstream["trained"]]
    trained, _, _ = load_model(folder[ticket.id] / "final")
    again = imp_round(trained, masks[1], opts).masks
    assert again is not None and all(torch.equal(again[n], masks[2][n]) for n in masks[2])
    large, _, _ = load_model(folder[ticket.upstream["large"]] / "final")
    from_large = imp_round(large, masks[1], opts).masks
    assert from_large is not None and any(not torch.equal(from_large[n], masks[2][n]) for n in masks[2])
    # every round's tickets train under their round's mask
    for s in plan.stages:
        if s.kind in ("winning_ticket", "random_ticket"):
            model, _, _ = load_model(folder[s.id] / "final")
            mask = load_model(folder[s.upstream["pruned"]] / PRUNED_DIR)[1]
            assert all(not model.get_parameter(n).detach()[~v].any() for n, v in mask.items())
    # finished stages are never recomputed: a second run does nothing
    assert run_experiment(preset, tmp_path, say=lambda _: None).ran == 0


def test_imp_refuses_arms_it_does_not_define() -> None:
    with pytest.raises(ConfigError, match="ticket"):
        expand(_preset(TINY.replace("random_ticket = true", "random_ticket = true\nscratch_e = true")))


def test_han_and_imp_are_distinct_options() -> None:
    han = TINY.replace('iterative_rounds = 3, iterative = "imp"', "iterative_rounds = 3, round_epochs = 1")
    plan = expand(_preset(han))
    assert not any(s.kind == "imp_prune" for s in plan.stages)
    assert sum(s.kind == "prune" for s in plan.stages) == 2
