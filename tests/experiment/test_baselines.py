"""Retraining-budget and random-selection baselines: recipes, plans, rewinding, random layer-wise
pruning, and one tiny end-to-end run of every new arm on digits."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import SmallVGG
from kit import tiny_preset

from prunebench.errors import ConfigError
from prunebench.experiment import Store, expand, load_preset, parse_preset, run_experiment
from prunebench.experiment.baselines import long_finetune_recipe, rewound_model, rewound_recipe
from prunebench.experiment.preset import preset_dir
from prunebench.experiment.resolve import recipe_of
from prunebench.models import attached_spec
from prunebench.prune import get_method
from prunebench.prune.lottery import SaveEpochCallback
from prunebench.prune.random_layerwise import random_layerwise
from prunebench.report.writer import write_report
from prunebench.train import Recipe, SaveInitCallback, load_model

TINY = tiny_preset(
    "tiny-baselines", seeds=(0, 1), data="digits", train_subset=300, variant="resnet20", width_mult=0.25, label="l1",
    options=None, method_extra=("amounts = [0.3, 0.6]",), arms=("finetuned",), arms_extra=("{arms}",),
    large=("epochs = 2", "lr = 0.05", "milestones = [1]", "batch_size = 128"),
    finetune=("epochs = 1", "lr = 0.005", "batch_size = 128"), tail=("[compare]", "margin = 1.0"),
)
NEW_ARMS = "finetune_long = true\nlr_rewind = true\nweight_rewind = true\nrandom_layerwise = true\nrewind_epoch = 1"


def _preset(arms: str = NEW_ARMS, text: str = TINY) -> Any:
    return parse_preset(tomllib.loads(text.format(arms=arms)), "tiny.toml")


# -- recipes and plans ---------------------------------------------------------------------------


def test_rewound_recipe_runs_the_rest_of_the_large_schedule() -> None:
    large = Recipe(epochs=10, lr=0.1, milestones=(3, 6, 8), lr_multipliers=(0.1, 0.5, 0.2)).to_dict()
    for t in (0, 3, 4, 9):
        r, base = recipe_of(rewound_recipe(large, t)), recipe_of(large)
        assert r.epochs == 10 - t
        assert [r.lr_at(e) for e in range(r.epochs)] == pytest.approx([base.lr_at(e) for e in range(t, 10)])
    assert recipe_of(rewound_recipe(large, 0)) == recipe_of(large)
    plain = recipe_of(rewound_recipe(Recipe(epochs=8, lr=0.2, milestones=(4, 6)).to_dict(), 5))
    assert (plain.lr, plain.milestones, plain.epochs) == (pytest.approx(0.02), (1,), 3)  # gamma kept


def test_long_finetune_gets_the_scratch_e_epochs() -> None:
    ft = long_finetune_recipe(Recipe(epochs=4, lr=0.01, milestones=(2,)).to_dict(), 12)
    assert (ft["epochs"], ft["milestones"], ft["lr"]) == (12, [6], 0.01)


def test_plan_adds_each_arm_per_amount_and_seed_and_leaves_other_identities_alone() -> None:
    with_arms, without = expand(_preset()), expand(_preset(arms=""))
    counts: dict[str, int] = {}
    for s in with_arms.stages:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    assert counts == {"train_large": 2, "prune": 4, "finetune": 4, "finetune_long": 4, "lr_rewind": 4,
                      "weight_rewind": 4, "random_layerwise": 4}  # fmt: skip
    large = [s for s in with_arms.stages if s.kind == "train_large"]
    assert all(s.config["rewind_epoch"] == 1 for s in large)  # the epoch-1 checkpoint is asked for
    # without weight rewinding at t > 0 the large stage (and all below it) keep their identities
    t0 = expand(_preset(arms=NEW_ARMS.replace("rewind_epoch = 1", "rewind_epoch = 0")))
    plain_ids = {s.id for s in without.stages}
    assert plain_ids <= {s.id for s in t0.stages} and not plain_ids & {s.id for s in large}
    arms = {(m, a) for m, a, _, _ in with_arms.links}
    assert ("l1@0.6", "random_layerwise") in arms and ("l1@0.3", "weight_rewind") in arms
    for s in with_arms.stages:
        if s.kind in ("weight_rewind", "random_layerwise"):  # seed-paired with the pruning run
            by_id = with_arms.by_id()
            assert by_id[s.upstream["pruned"]].seed == by_id[s.upstream["large"]].seed == s.seed


@pytest.mark.parametrize(("name", "per_kind"), [("e1-l1-cifar10-vgg16-baselines", 25), ("e4-slimming-cifar10-vgg19-baselines", 15)])
def test_full_scale_baseline_presets_plan_every_arm_at_every_amount(name: str, per_kind: int) -> None:
    plan = expand(load_preset(name))  # 5 seeds x (VGG-16-A + 4 ratios) / (3 slimming ratios)
    for kind in ("finetune", "finetune_long", "lr_rewind", "weight_rewind", "random_layerwise", "scratch_e", "scratch_b"):
        assert sum(s.kind == kind for s in plan.stages) == per_kind, kind
    assert all(s.config.get("rewind_epoch") == 20 for s in plan.stages if s.kind == "train_large")


def test_preset_keys_are_checked() -> None:
    p = _preset()
    assert [m.label for m in p.methods] == ["l1@0.3", "l1@0.6"] and [m.amount for m in p.methods] == [0.3, 0.6]
    assert p.methods[0].options == {"ratio": 0.3} and p.methods[0].curve == "l1" and p.compare.margin == 1.0
    with pytest.raises(ConfigError, match=r"arms.rewind_epoch: must be below recipes.large.epochs \(2\)"):
        _preset(arms=NEW_ARMS.replace("rewind_epoch = 1", "rewind_epoch = 2"))
    with pytest.raises(ConfigError, match=r"methods\[0\].options.ratio: the amounts set this option"):
        _preset(text=TINY.replace('amounts = [0.3, 0.6]', 'amounts = [0.3]\noptions = {{ ratio = 0.5 }}'))
    with pytest.raises(ConfigError, match=r"methods\[0\].amounts\[1\].options: .*ratio"):
        _preset(text=TINY.replace("[0.3, 0.6]", "[0.3, 1.5]"))
    with pytest.raises(ConfigError, match=r"compare.margin: expected a positive number"):
        _preset(text=TINY.replace("margin = 1.0", "margin = -1"))


# -- rewinding and random selection on a real trained model -----------------------------------


def _trained(small_vgg: SmallVGG) -> tuple[torch.nn.Module, Any, Path, Path]:
    """A 2-epoch run that saved its epoch-1 weights, and a separate 1-epoch run of the same seed."""
    recipe = Recipe(epochs=2, lr=0.05, batch_size=64, precision="fp32")
    model, splits, out = small_vgg("rewind2", train_subset=200, val_size=0, recipe=recipe,
                                   callbacks=[SaveInitCallback(), SaveEpochCallback(1)])  # fmt: skip
    _, _, one = small_vgg("rewind1", train_subset=200, val_size=0, recipe=recipe.replace(epochs=1))
    return model, splits, out, one


def _assert_same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_weight_rewinding_restores_exactly_the_epoch_t_weights(small_vgg: SmallVGG) -> None:
    from prunebench.prune import channel_masks, prune_channels

    model, splits, out, one = _trained(small_vgg)
    epoch1, _, _ = load_model(one / "final")  # the weights after exactly one epoch
    final, _, _ = load_model(out / "final")
    _assert_same(load_model(out / "epoch_1")[0], epoch1)
    l1 = get_method("l1norm")
    res = l1.prune(final, splits, l1.parse_options({"ratio": 0.5}), seed=0)
    assert res.kept and res.masks is None
    rewound = rewound_model(out / "epoch_1", res.model, None, res.kept)
    _assert_same(rewound, prune_channels(epoch1, res.kept))  # the survivors hold their epoch-1 values
    conv = next(k for k, v in rewound.state_dict().items() if v.dim() == 4)
    assert not torch.equal(rewound.state_dict()[conv], res.model.state_dict()[conv])  # not the final weights
    # mask form: the full model at epoch 1, zero outside the masks
    masks = channel_masks(final, res.kept)
    masked = rewound_model(out / "epoch_1", final, masks, None)
    for k, v in epoch1.state_dict().items():
        expected = v * masks[k] if k in masks else v
        assert torch.equal(masked.state_dict()[k], expected), k


def test_random_layerwise_keeps_exactly_the_method_s_per_layer_counts(small_vgg: SmallVGG) -> None:
    model, splits, out, _ = _trained(small_vgg)
    l1 = get_method("l1norm")
    res = l1.prune(model, splits, l1.parse_options({"ratio": 0.5}), seed=0)
    assert res.kept
    rand, masks, kept = random_layerwise(model, None, res.kept, seed=3)
    assert masks is None and kept is not None
    assert attached_spec(rand) == attached_spec(res.model)  # the same per-layer widths
    assert {g: len(v) for g, v in kept.items()} == {g: len(v) for g, v in res.kept.items()}
    assert any(sorted(kept[g]) != sorted(res.kept[g]) for g in kept)  # but other channels
    assert kept == random_layerwise(model, None, res.kept, seed=3)[2] != random_layerwise(model, None, res.kept, seed=4)[2]
    first = min(kept)  # inherited weights: the large model's filters at the random indices
    name = f"{first}.weight"
    assert torch.equal(rand.get_parameter(name), model.get_parameter(name)[kept[first]])
    # unstructured: per-tensor counts of the magnitude masks, at other places, large weights kept
    mag = get_method("magnitude")
    mres = mag.prune(model, splits, mag.parse_options({"ratio": 0.7}), seed=0)
    assert mres.masks
    rmodel, rmasks, _ = random_layerwise(model, mres.masks, None, seed=1)
    assert rmasks is not None and rmasks.keys() == mres.masks.keys()
    for k, m in mres.masks.items():
        assert int(rmasks[k].sum()) == int(m.sum()) and not torch.equal(rmasks[k], m.bool())
        w = rmodel.get_parameter(k)
        assert torch.equal(w, model.get_parameter(k) * rmasks[k])


# -- end to end ------------------------------------------------------------------------------------


def _shipped_on_digits() -> Any:
    """The shipped fmnist-baselines preset (its arms, margin, rewind epoch and budget) shrunk onto digits."""
    raw = tomllib.loads((preset_dir() / "fmnist-baselines.toml").read_text())
    assert raw["arms"]["weight_rewind"] and raw["arms"]["rewind_epoch"] == 1 and len(raw["methods"][0]["amounts"]) > 2
    raw.update(seeds=[0], data={"name": "digits", "train_subset": 300, "test_subset": 100},
               model={"variant": "resnet20", "width_mult": 0.25})  # fmt: skip
    raw["methods"][0]["amounts"] = [0.3, 0.6]
    raw["recipes"]["large"].update(epochs=2, batch_size=128)
    raw["recipes"]["finetune"].update(batch_size=128)
    return parse_preset(raw, "fmnist-baselines-on-digits.toml")


def test_every_new_arm_runs_resumes_and_is_reported(tmp_path: Path) -> None:
    preset = _shipped_on_digits()
    summary = run_experiment(preset, tmp_path, progress=False)
    assert summary.ran == summary.total
    again = run_experiment(preset, tmp_path, progress=False)  # skip-if-done
    assert again.ran == 0
    store = Store.open(tmp_path)
    try:
        rows = store.rows()
        stages = {sid: store.stage(sid) for sid in store.status()}
    finally:
        store.close()
    arms = {(r["method"], r["arm"]) for r in rows}
    for method in ("l1norm@0.3", "l1norm@0.6"):
        for arm in ("finetuned", "finetune_long", "lr_rewind", "weight_rewind", "random_layerwise"):
            assert (method, arm) in arms
    by_arm = {r["arm"]: r for r in rows if r["method"] == "l1norm@0.6" and r["seed"] == 0}
    assert by_arm["finetune_long"]["epochs"] == 2 and by_arm["lr_rewind"]["epochs"] == 1  # schedule from t = 1
    assert by_arm["random_layerwise"]["params_nonzero"] == by_arm["finetuned"]["params_nonzero"]
    large = [s for s in stages.values() if s["kind"] == "train_large"]
    assert all((tmp_path / "stages" / Path(s["dir"]).name / "epoch_1" / "weights.safetensors").is_file() for s in large)
    write_report(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "Verdicts against the pruning pipeline" in report and "**l1norm@0.6** vs fine-tuned" in report
    assert "Weight rewinding" in report and "accuracy-vs-flops.png" in report
    assert "Random selection at the layer-wise amounts" in (tmp_path / "report.tex").read_text()
    exported = json.loads((tmp_path / "results.json").read_text())
    assert {"lr_rewind", "weight_rewind", "random_layerwise", "finetune_long"} <= {r["arm"] for r in exported}
    assert "weight_rewind" in (tmp_path / "results.csv").read_text()
