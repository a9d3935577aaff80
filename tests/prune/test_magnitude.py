"""Magnitude pruning: exact global threshold (checked from disk), masks that hold, arms above chance."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch

from prunebench.errors import ConfigError
from prunebench.measure import flops_ratio
from prunebench.prune import get_method
from prunebench.prune.scratch import scratch_model
from prunebench.train import Recipe, evaluate, load_model, save_model, train

METHOD = get_method("magnitude")
LARGE = Recipe(epochs=2, lr=0.05, batch_size=32, precision="fp32")


@pytest.fixture(scope="module")
def large(small_vgg: Callable[..., tuple]) -> tuple[torch.nn.Module, object, Path]:
    return small_vgg("magnitude-large", train_subset=1500, val_size=200, recipe=LARGE)


def _prune(model: torch.nn.Module, splits: object, **options: object):
    return METHOD.prune(copy.deepcopy(model), splits, METHOD.parse_options(options))


def _test_acc(model: torch.nn.Module, splits) -> float:
    return evaluate(model, splits.test_x[:1000], splits.test_y[:1000], info=splits.info)


def _trained_weights(out: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(out / "final" / "weights.safetensors"))


@pytest.mark.parametrize("percent", [0.5, 0.9])
def test_global_threshold_leaves_the_exact_fraction_checked_from_disk(large, tmp_path: Path, percent: float) -> None:
    model, splits, out = large
    result = _prune(model, splits, ratio=percent)
    save_model(tmp_path / "pruned", result.model, masks=result.masks)
    reloaded, masks, _ = load_model(tmp_path / "pruned")
    trained = _trained_weights(out)
    params = dict(reloaded.named_parameters())
    convs = [k for k, v in trained.items() if v.dim() == 4]
    assert masks is not None and sorted(masks) == sorted(convs)
    n = sum(trained[k].numel() for k in convs)
    nonzero = sum(int(torch.count_nonzero(params[k])) for k in convs)
    # reference rule: everything up to and including sorted index int(n*p) goes (no ties in trained floats)
    assert nonzero == sum(int(masks[k].sum()) for k in convs) == n - int(n * percent) - 1
    thr = torch.cat([trained[k].abs().flatten() for k in convs]).sort().values[int(n * percent)]
    for k in convs:
        assert torch.equal(masks[k], trained[k].abs() > thr)
        assert torch.equal(params[k], trained[k] * masks[k])
    # linear layers are untouched by default
    linear = [k for k, v in trained.items() if k.startswith("classifier") and k.endswith("weight")]
    assert linear and all(torch.equal(params[k], trained[k]) for k in linear)
    assert result.info["density"] == pytest.approx(1 - percent, abs=2 / n)
    assert result.info["compression_ratio"] > 1 and result.info["flops_sparse"] < result.info["flops_dense"]


@pytest.mark.parametrize("percent", [0.5, 0.9])
def test_finetune_and_scratch_e_arms_beat_chance_and_keep_zeros(large, tmp_path: Path, percent: float) -> None:
    model, splits, _ = large
    result = _prune(model, splits, percent=percent)
    opts = METHOD.parse_options({"percent": percent})
    base = Recipe(epochs=1, lr=0.01, batch_size=32, momentum=0.9, weight_decay=5e-4, precision="fp32")
    finetune = METHOD.finetune(opts, base)
    train(result.model, splits, finetune, tmp_path / "ft", seed=1, masks=result.masks, eval_test=False)
    scratch, masks = scratch_model(result.model, seed=2, masks=result.masks)
    assert flops_ratio(model, scratch, masks) > 1
    train(scratch, splits, LARGE, tmp_path / "scratch-e", seed=2, masks=masks, eval_test=False)
    for arm in (result.model, scratch):
        params = dict(arm.named_parameters())
        for name, mask in result.masks.items():
            assert not params[name][~mask].any(), f"{name} revived through momentum / weight decay"
        assert _test_acc(arm, splits) > 0.5


def test_include_linear_prunes_the_classifier_too(large) -> None:
    model, splits, _ = large
    result = _prune(model, splits, percent=0.5, include_linear=True)
    assert "classifier.0.weight" in result.masks
    assert 0 < result.masks["classifier.0.weight"].float().mean() < 1
    assert not any(k.endswith(".bias") for k in result.masks)


def test_layer_scope_prunes_each_layer_by_its_own_threshold(large) -> None:
    model, splits, _ = large
    result = _prune(model, splits, percent=0.5, scope="layer")
    convs = [r for r in result.info["layers"] if r["kind"] == "conv"]
    assert len(convs) == 8 and [r["stage"] for r in convs] == [0, 1, 2, 2, 3, 3, 4, 4]
    for row in convs:
        assert row["kept"] == row["total"] - int(row["total"] * 0.5) - 1
    assert [m["stage"] for m in result.info["kernel_maps"]] == [0, 1, 2, 3, 4]


def test_iterative_two_rounds_with_retraining_reach_the_squared_density(large, tmp_path: Path) -> None:
    model, splits, _ = large
    p = 0.4
    retrain = {"lr": 0.01, "batch_size": 128, "precision": "fp32"}
    method = get_method("magnitude")
    method.work_dir = tmp_path  # the experiment passes the prune stage's own folder
    opts = method.parse_options({"ratio": p, "iterative_rounds": 2, "round_epochs": 1, "round_recipe": retrain})
    result = method.prune(copy.deepcopy(model), splits, opts)
    ran = json.loads((tmp_path / "round1" / "result.json").read_text())  # retrained through the trainer
    assert ran["epochs"] == 1 and ran["steps"] == math.ceil(len(splits.train_y) / 128)
    n = sum(m.numel() for m in result.masks.values())
    assert result.info["density"] == pytest.approx((1 - p) ** 2, abs=3 / n)
    params = dict(result.model.named_parameters())
    assert all(not params[k][~m].any() for k, m in result.masks.items())


def test_an_emptied_layer_warns_and_is_reported(large) -> None:
    model, splits, _ = large
    tiny = copy.deepcopy(model)
    with torch.no_grad():
        tiny.features[0].weight.mul_(1e-6)
    with pytest.warns(UserWarning, match="emptied 1 layer"):
        result = METHOD.prune(tiny, splits, METHOD.parse_options({"percent": 0.3}))  # the old name still works
    assert result.info["emptied_layers"] == ["features.0"]
    assert torch.isfinite(result.model(torch.zeros(2, 1, 28, 28))).all()


@pytest.mark.parametrize(
    "options",
    [
        {"ratio": 1.0},
        {"percent": 0.0},
        {"ratio": 0.5, "percent": 0.5},
        {"scope": "block"},
        {"iterative_rounds": 0},
        {"keep_rate": 0.5},
        {"work_dir": "/tmp/elsewhere"},  # inner runs go to the stage's own folder (or a temporary one), never a path option
        {"iterative_rounds": 3},  # Han-style rounds without retraining are one-shot: refused, not ignored
        {"round_epochs": 2},  # retraining between rounds of a one-round run would be ignored
        {"round_recipe": {"lr": 0.01}},
        {"iterative": "imp"},  # IMP needs rounds
        {"iterative": "imp", "iterative_rounds": 3, "round_epochs": 2},
        {"iterative": "lottery", "iterative_rounds": 3},
        {"iterative_rounds": 2, "round_epochs": 1, "round_recipe": {"lr": -1}},
        {"iterative_rounds": 2, "round_epochs": 1, "round_recipe": {"momentun": 0.9}},
        {"iterative_rounds": 2, "round_epochs": 1, "round_recipe": {"epochs": 3}},
    ],
)
def test_bad_options_are_config_errors(options: dict) -> None:
    with pytest.raises(ConfigError):
        METHOD.parse_options(options)


def test_iterative_retraining_without_data_is_a_config_error(large) -> None:
    model, _, _ = large
    with pytest.raises(ConfigError, match="splits"):
        _prune(model, None, ratio=0.5, iterative_rounds=2, round_epochs=1)
