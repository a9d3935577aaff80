"""Architecture-search arms (uniform sparsity, guided, transferred guided) and SFP from a pretrained model."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch

from prunebench.errors import ConfigError
from prunebench.experiment import Store, expand, format_plan, load_preset, parse_preset, run_experiment
from prunebench.models import spec_from_dict
from prunebench.prune.analysis import conv_stages
from prunebench.prune.guided_sparse import stage_sparsity
from prunebench.train import load_model

TINY = """
name = "{name}"
seeds = [0]
log_test_every_epoch = false
[data]
name = "fashion-mnist"
train_subset = {subset}
test_subset = 100
[model]
variant = "vgg11"
width_mult = 0.125
{methods}
[arms]
{arms}
[recipes.large]
epochs = 1
lr = 0.05
[recipes.finetune]
epochs = 1
lr = 0.005
{extra}
"""
SLIM_AND_MAGNITUDE = """
[[methods]]
name = "slimming"
label = "slim"
options = { ratio = 0.5, lam = 1e-4 }
[[methods]]
name = "magnitude"
label = "mag"
options = { percent = 0.7 }
"""
SEARCH_ARMS = "pruned_no_ft = true\nguided_scratch = true\nuniform_sparse_scratch = true\nguided_sparse_scratch = true"


def _tiny(name: str, *, subset: int = 100, methods: str = SLIM_AND_MAGNITUDE, arms: str = SEARCH_ARMS, extra: str = "") -> Any:
    text = TINY.format(name=name, subset=subset, methods=methods, arms=arms, extra=extra)
    return parse_preset(tomllib.loads(text), f"{name}.toml")


def _counts(plan: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in plan.stages:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    return counts


def test_search_arms_apply_to_the_fitting_pruning_style() -> None:
    plan = expand(_tiny("g").with_seeds(3))
    assert _counts(plan) == {
        "train_large": 6, "prune": 6, "guided_scratch": 3, "uniform_sparse_scratch": 3, "guided_sparse_scratch": 3,
    }  # fmt: skip
    by_id = plan.by_id()
    for s in plan.stages:
        if s.kind.endswith("_scratch"):  # seed-paired with, and derived from, the right pruning run
            prune = by_id[s.upstream["pruned"]]
            assert prune.seed == s.seed
            assert prune.methods == (("slim",) if s.kind == "guided_scratch" else ("mag",))


def test_transfer_table_and_arm_go_together() -> None:
    with pytest.raises(ConfigError, match=r"g.toml: transfer: the transferred_guided_scratch arm and a \[transfer\] table"):
        _tiny("g", arms="transferred_guided_scratch = true")
    with pytest.raises(ConfigError, match="has no method 'nope'; it has l1norm-30%, l1norm-60%"):
        expand(_tiny("g", arms="transferred_guided_scratch = true", extra='[transfer]\nsource = "fmnist-l1"\nmethod = "nope"'))


def test_sfp_pretrained_has_a_soft_train_stage_and_the_longer_scratch_b_base() -> None:
    plan = expand(load_preset("fmnist-sfp").with_seeds(1))
    by_id = plan.by_id()
    [soft] = [s for s in plan.stages if s.kind == "soft_train"]
    pretrain = by_id[soft.upstream["pretrained"]]
    assert pretrain.kind == "train_large" and pretrain.config["large_training"] == {"kind": "plain"}
    assert soft.config["recipe"]["lr"] == 0.001
    # the pretrain baseline is also the from-scratch SFP run's plain baseline: one stage
    plain = {sid for m, arm, sid, _ in plan.links if arm == "unpruned_plain"}
    assert plain == {pretrain.id}
    prunes = {s.methods[0]: s for s in plan.stages if s.kind == "prune"}
    assert by_id[prunes["sfp-pretrained-keep70%"].upstream["large"]] == soft
    assert by_id[prunes["sfp-keep70%"].upstream["large"]].config["large_training"]["kind"] == "soft"
    base = {s.methods[0]: s.config["budget"]["base_epochs"] for s in plan.stages if s.kind == "scratch_b"}
    assert base == {"sfp-keep70%": 8, "sfp-pretrained-keep70%": 16}
    full = expand(load_preset("e7-sfp-pretrained-cifar10-resnet56").with_seeds(1))
    assert [s.config["budget"]["base_epochs"] for s in full.stages if s.kind == "scratch_b"] == [400]
    plain_sfp = expand(load_preset("e7-sfp-cifar10-resnet56").with_seeds(1))
    assert [s.config["budget"]["base_epochs"] for s in plain_sfp.stages if s.kind == "scratch_b"] == [200]


def test_transferred_source_stages_are_the_source_presets_own(tmp_path: Path) -> None:
    preset = _tiny("t", arms="guided_scratch = true\ntransferred_guided_scratch = true",
                   extra='[transfer]\nsource = "fmnist-l1"\nmethod = "l1norm-30%"')  # fmt: skip
    plan = expand(preset)
    source = {s.id for s in expand(load_preset("fmnist-l1").with_seeds(1)).stages if s.kind in ("train_large", "prune")}
    transferred = [s for s in plan.stages if s.kind == "transferred_guided_scratch"]
    assert len(transferred) == 2  # one per pruning run of this preset
    for s in transferred:
        assert {s.upstream["source_pruned"], s.upstream["source_large"]} <= source
    assert "transferred patterns: l1norm-30% of preset fmnist-l1" in format_plan(plan)


def test_search_arms_run_end_to_end(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    source = tmp_path / "source.toml"  # another data subset (another split hash): its own stages
    source.write_text(TINY.format(name="src", subset=200, methods='[[methods]]\nname = "l1norm"\nlabel = "l1"\noptions = { ratio = 0.6 }',
                                  arms="unpruned = true\nfinetuned = true", extra=""))  # fmt: skip
    arms = SEARCH_ARMS + "\ntransferred_guided_scratch = true"
    preset = _tiny("e2e", arms=arms, extra=f'[transfer]\nsource = "{source}"\nmethod = "l1"')
    summary = run_experiment(preset, tmp_path / "exp", progress=False)
    assert summary.ran == summary.total == 11
    store = Store.open(tmp_path / "exp")
    rows = {(r["method"], r["arm"]): r for r in store.rows()}
    store.close()
    assert all(0.0 <= r["primary_acc"] <= 1.0 for r in rows.values())
    slim = rows[("slim", "pruned_no_ft")]["params_nonzero"]
    for arm in ("guided_scratch", "transferred_guided_scratch"):  # sized to the slimming run's parameters
        guided = rows[("slim", arm)]
        assert guided["arch"]["densities"] is None
        assert abs(guided["params_total"] - slim) <= 0.05 * slim, arm
    mag = rows[("mag", "pruned_no_ft")]
    conv = {k: v for k, v in mag["arch"]["densities"].items() if k.startswith("features")}
    kept = _conv_kept(mag["arch"]["spec"], conv)
    for arm in ("uniform_sparse_scratch", "guided_sparse_scratch"):
        r = rows[("mag", arm)]
        assert r["style"] == "mask" and r["params_total"] == mag["params_total"]
        assert abs(_conv_kept(r["arch"]["spec"], r["arch"]["densities"]) - kept) <= 0.01 * kept, arm
    uniform = rows[("mag", "uniform_sparse_scratch")]["arch"]["densities"]
    assert max(uniform.values()) - min(uniform.values()) < 0.01  # one density everywhere
    assert rows[("mag", "transferred_guided_scratch")]["style"] == "physical"  # the source is structured


def _conv_kept(spec: dict[str, Any], densities: dict[str, float]) -> float:
    """Kept conv weights implied by per-tensor densities of the model `spec` describes."""
    params = dict(spec_from_dict(spec).build().named_parameters())
    return sum(d * params[k].numel() for k, d in densities.items() if params[k].dim() == 4)


def test_sfp_from_pretrained_runs(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    methods = '[[methods]]\nname = "sfp"\noptions = { keep_rate = 0.5, pretrained = true }'
    text = TINY.format(name="sfp", subset=100, methods=methods, arms="unpruned = true\nunpruned_plain = true\nfinetuned = true", extra="")
    preset = parse_preset(tomllib.loads(text.replace('"vgg11"', '"resnet20"').replace("0.125", "0.25")), "sfp.toml")
    assert run_experiment(preset, tmp_path, progress=False).total == 3  # pretrain, soft_train, prune
    store = Store.open(tmp_path)
    rows = {r["arm"]: r for r in store.rows()}
    store.close()
    assert rows["unpruned"]["kind"] == "soft_train" and rows["unpruned_plain"]["kind"] == "train_large"
    # soft pruning leaves half of every conv's filters zero; the plain pretrained model has none
    assert rows["unpruned"]["params_nonzero"] < 0.8 * rows["unpruned"]["params_total"]
    assert rows["unpruned_plain"]["params_nonzero"] == rows["unpruned_plain"]["params_total"]
    assert rows["finetuned"]["params_total"] < rows["unpruned"]["params_total"]


def test_transferred_sparsity_from_a_mask_source(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    source = tmp_path / "source.toml"
    source.write_text(TINY.format(name="src", subset=200, methods='[[methods]]\nname = "magnitude"\nlabel = "m"\noptions = { percent = 0.6 }',
                                  arms="unpruned = true\npruned_no_ft = true", extra=""))  # fmt: skip
    methods = '[[methods]]\nname = "l1norm"\nlabel = "l1"\noptions = { ratio = 0.5 }'
    preset = _tiny("tm", methods=methods, arms="transferred_guided_scratch = true", extra=f'[transfer]\nsource = "{source}"\nmethod = "m"')
    assert run_experiment(preset, tmp_path / "exp", progress=False).total == 5
    store = Store.open(tmp_path / "exp")
    [row] = [r for r in store.rows() if r["arm"] == "transferred_guided_scratch"]
    store.close()
    assert row["style"] == "mask"
    # the source's per-stage densities, re-sampled onto the same network: every conv follows its stage
    src_dir = next((tmp_path / "exp" / "stages").glob(f"prune-*{row['upstream']['source_pruned'][:12]}")) / "pruned"
    densities, _ = stage_sparsity(load_model(src_dir)[2]["info"])
    stages = conv_stages(spec_from_dict(row["arch"]["spec"]).build())
    assert len(set(stages.values())) == len(densities) > 1
    for conv, stage in stages.items():
        assert row["arch"]["densities"][f"{conv}.weight"] == pytest.approx(densities[stage], abs=0.02), conv
    assert max(densities) - min(densities) > 0.05  # a global threshold prunes stages differently
