"""Uniform-width baseline: one factor matching a params/FLOPs target, trained from scratch only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from prunebench.data import load
from prunebench.errors import ConfigError
from prunebench.measure import count_flops, count_params
from prunebench.models import CifarResNetSpec, VGGSpec, variant
from prunebench.prune import get_method
from prunebench.prune.uniform import floor_scaled, uniform_spec
from prunebench.train import Recipe, evaluate, seed_everything, train

METHOD = get_method("uniform")
SMALL = VGGSpec(cfg=(16, "M", 32, 32, "M", 64), in_channels=1, input_size=8)


def _params(spec: VGGSpec) -> int:
    return count_params(spec.build()).total


def _convs(spec: VGGSpec) -> list[int]:
    return [v for v in spec.cfg if v != "M"]


@pytest.mark.parametrize("rounding", ["floor", "nearest"])
def test_factor_gives_the_closest_parameter_count_of_any_factor(rounding: str) -> None:
    goal = _params(SMALL) // 3
    spec, factor = uniform_spec(SMALL, target_params=goal, rounding=rounding)
    if rounding == "floor":  # the L1 rule, int(C·f), in every layer
        assert _convs(spec) == [int(c * factor) for c in _convs(SMALL)]
    else:
        assert spec == SMALL.scaled(factor)
    scale = SMALL.scaled if rounding == "nearest" else lambda f: floor_scaled(SMALL, f)
    grid = [scale(k / 256) for k in range(1, 257)]
    assert abs(_params(spec) - goal) <= min(abs(_params(s) - goal) for s in grid)  # brute force over a fine grid


def test_floor_rounding_keeps_residual_widths() -> None:
    base = CifarResNetSpec.uniform(3)
    spec, factor = uniform_spec(base, target_params=_params(base) // 2)
    assert spec.planes == base.planes
    assert list(spec.block_widths) == [int(w * factor) for w in base.block_widths]
    widened, _ = uniform_spec(base, target_params=_params(base) // 2, rounding="nearest")
    assert widened.planes != base.planes


def test_flops_target_matches_reference_flops() -> None:
    base = count_flops(SMALL.build(), mode="reference").flops
    spec, factor = uniform_spec(SMALL, target_flops=base // 2)
    assert 0.5 < factor < 1
    assert count_flops(spec.build(), mode="reference").flops == pytest.approx(base / 2, rel=0.05)


def test_targets_are_checked() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        uniform_spec(SMALL, target_params=10, target_flops=10)
    with pytest.raises(ConfigError, match="smallest model"):
        uniform_spec(SMALL, target_params=5)
    with pytest.raises(ConfigError, match="more than 1x"):
        uniform_spec(SMALL, target_params=2 * _params(SMALL))
    assert uniform_spec(SMALL, target_params=2 * _params(SMALL), rounding="nearest")[1] > 1
    with pytest.raises(ConfigError, match="exactly one"):
        METHOD.parse_options({"target": "params"})
    with pytest.raises(ConfigError, match="target"):
        METHOD.parse_options({"target": "latency", "match": 0.5})


def test_reference_spec_sets_the_target() -> None:
    seed_everything(0)
    pruned = SMALL.replace(cfg=(4, "M", 32, 8, "M", 64))
    opts = METHOD.parse_options({"reference_spec": pruned.to_json()})
    result = METHOD.prune(SMALL.build(), None, opts)
    assert result.info["goal"] == _params(pruned)
    assert result.info["achieved"] == _params(result.model.spec)
    assert abs(result.info["achieved"] - result.info["goal"]) / result.info["goal"] < 0.1


def test_uniform_model_is_fresh_and_trains_from_scratch(tmp_path: Path) -> None:
    splits = load("fashion-mnist", val_size=500, train_subset=2000)
    seed_everything(0)
    large = variant("vgg11", splits.info, width_mult=0.5).build()
    opts = METHOD.parse_options({"match": 0.3})
    result = METHOD.prune(large, splits, opts, seed=0)
    again = METHOD.prune(large, splits, opts, seed=0).model
    model = result.model
    assert result.info["scratch_only"] is True and result.masks is None
    assert result.info["achieved"] == pytest.approx(0.3 * count_params(large).total, rel=0.05)
    assert _convs(model.spec) == [int(c * result.info["factor"]) for c in _convs(large.spec)]  # one factor for all
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    train(model, splits, Recipe(epochs=2, lr=0.05, precision="fp32"), tmp_path, seed=0, eval_test=False)
    assert evaluate(model, splits.val_x, splits.val_y, info=splits.info) > 0.5
