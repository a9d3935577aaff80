"""|γ| before and after sparsity training: the statistics the slimming report states."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from prunebench.data import load
from prunebench.models.vgg import VGGSpec
from prunebench.prune import get_method
from prunebench.report.gamma import SMALL_GAMMA, GammaStats, bn_scales
from prunebench.train import Recipe, seed_everything, train

# digits (8x8) and a three-conv VGG: ~280 SGD steps in a few seconds, enough for the loss to
# defend the useful channels while the L1 pull drives the others to zero.
SPEC = VGGSpec(cfg=(16, "M", 32, 32), num_classes=10, in_channels=1, input_size=8, bn_gamma=0.5)
RECIPE = Recipe(epochs=6, lr=0.05, batch_size=32, precision="fp32")


def _scales(tmp_path: Path, lam: float | None) -> torch.Tensor:
    method = get_method("slimming")
    callbacks = method.large_training(method.parse_options({"ratio": 0.5, "lam": lam}), SPEC) if lam else []
    splits = load("digits", val_size=0)
    seed_everything(0)
    model = SPEC.build()
    train(model, splits, RECIPE, tmp_path / f"lam{lam}", seed=0, callbacks=callbacks, progress=False, eval_test=False)
    return bn_scales(model)


def test_sparsity_training_moves_many_scales_below_the_threshold(tmp_path: Path) -> None:
    # The same model, data, seed and steps, with and without the L1 pull on the BN scales.
    plain = GammaStats.of(_scales(tmp_path, None))
    sparse = GammaStats.of(_scales(tmp_path, 0.01))
    assert plain.n == sparse.n == 16 + 32 + 32  # every BN-scaled channel
    assert plain.small_fraction < 0.05  # plain training leaves the scales near their 0.5 start
    assert sparse.small_fraction > plain.small_fraction + 0.3
    assert sparse.max > 5 * SMALL_GAMMA  # bimodal, not a uniform shrink: useful channels survive


def test_stats_of_known_values() -> None:
    s = GammaStats.of(torch.tensor([0.0, SMALL_GAMMA / 2, SMALL_GAMMA, 0.5, 1.0]))
    assert (s.n, s.max) == (5, 1.0) and s.median == pytest.approx(SMALL_GAMMA)  # float32 values
    assert s.small_fraction == pytest.approx(2 / 5)  # strictly below the threshold
    assert GammaStats.of(torch.zeros(0)) == GammaStats(0, 0.0, 0.0, 0.0)
