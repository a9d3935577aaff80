"""BN recalibration: exact re-estimated statistics, and recovered accuracy after pruning."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from prunebench.data import load
from prunebench.models import VGGSpec
from prunebench.prune import get_method
from prunebench.prune.recalibrate import recalibrate_bn
from prunebench.train import Recipe, evaluate, seed_everything, train

SPEC = VGGSpec(cfg=(16, "M", 32, 32, "M", 64), in_channels=1, input_size=8)


def test_statistics_are_the_average_over_the_training_batches() -> None:
    splits = load("digits", val_size=200, train_subset=500)
    seed_everything(0)
    model = SPEC.build()
    bn = model.features[1]
    bn.momentum = 0.3
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    # 10 batches of 50 cover the 500 training images once: the mean is the mean over all of them
    recalibrate_bn(model, splits, batches=10, batch_size=50)
    x = splits.train_x.float().div(255).sub(splits.info.mean[0]).div(splits.info.std[0])
    with torch.no_grad():
        expected = model.features[0](x).mean((0, 2, 3))
    assert torch.allclose(bn.running_mean, expected, atol=1e-5)
    assert not model.training and bn.momentum == 0.3
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())


def test_recalibration_recovers_accuracy_lost_to_stale_statistics(tmp_path: Path) -> None:
    splits = load("digits", val_size=200, train_subset=1000)
    seed_everything(0)
    model = SPEC.build()
    train(model, splits, Recipe(epochs=6, lr=0.05, precision="fp32"), tmp_path, seed=0, eval_test=False)
    method = get_method("l1norm")
    pruned = method.prune(model, splits, method.parse_options({"ratio": 0.5})).model
    stale = evaluate(pruned, splits.val_x, splits.val_y, info=splits.info)
    fixed = evaluate(recalibrate_bn(copy.deepcopy(pruned), splits), splits.val_x, splits.val_y, info=splits.info)
    assert fixed > stale + 0.2
