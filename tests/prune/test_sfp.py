"""Soft Filter Pruning: per-epoch lowest-L2 zeroing, exact hard pruning, end to end on Fashion-MNIST."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from prunebench.data import load
from prunebench.models import CifarResNetSpec
from prunebench.prune import get_method
from prunebench.prune.recalibrate import recalibrate_bn
from prunebench.prune.sfp import sfp_recipe
from prunebench.prune.surgery import apply_channel_masks, channel_masks
from prunebench.train import Callback, Recipe, TrainContext, evaluate, seed_everything, train

METHOD = get_method("sfp")
KEEP = 0.7


def _convs(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: m.weight for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


class ExpectLowestL2(Callback):
    """Placed before the SFP callback: records, per conv, the int(C·0.3) lowest-L2 filters."""

    def __init__(self) -> None:
        self.expected: dict[str, list[int]] = {}

    def _record(self, ctx: TrainContext) -> None:
        self.expected = {}
        for name, w in _convs(ctx.model).items():
            norms = w.detach().flatten(1).norm(dim=1).numpy()
            count = int(len(norms) * 3 / 10)
            # the kept ones are the top norms, ties to the lower index (stable descending sort)
            keep = np.argsort(-norms, kind="stable")[: len(norms) - count]
            self.expected[name] = sorted(set(range(len(norms))) - set(keep.tolist()))

    on_train_start = on_epoch_end = on_train_end = _record


class CheckZeroed(Callback):
    """Placed after the SFP callback: exactly the expected filters are zero, the others are not."""

    def __init__(self, expect: ExpectLowestL2) -> None:
        self.expect, self.checks = expect, 0

    def _check(self, ctx: TrainContext) -> None:
        for name, w in _convs(ctx.model).items():
            zero = (w.detach().flatten(1).abs().sum(1) == 0).nonzero().flatten().tolist()
            assert zero == self.expect.expected[name], name
        self.checks += 1

    on_train_start = on_epoch_end = on_train_end = _check


EPOCHS = 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, object, CheckZeroed]:
    """ResNet-20 at half width, SFP-trained from scratch on a Fashion-MNIST subset."""
    splits = load("fashion-mnist", val_size=500, train_subset=2000)
    seed_everything(0)
    spec = CifarResNetSpec.uniform(3, planes=(8, 16, 32), in_channels=1, input_size=28)
    model = spec.build()
    expect = ExpectLowestL2()
    check = CheckZeroed(expect)
    callbacks = [expect, *METHOD.large_training(METHOD.parse_options({"keep_rate": KEEP}), spec), check]
    recipe = Recipe(epochs=EPOCHS, lr=0.05, milestones=(2,), precision="fp32")
    train(model, splits, recipe, tmp_path_factory.mktemp("sfp"), seed=0, callbacks=callbacks, eval_test=False)
    return model, splits, check


def test_lowest_l2_filters_are_zeroed_at_start_every_epoch_and_end(trained: tuple) -> None:
    _, _, check = trained
    assert check.checks == 1 + EPOCHS + 1


def test_hard_pruned_model_equals_the_masked_model(trained: tuple) -> None:
    model, splits, _ = trained
    result = METHOD.prune(model, splits, METHOD.parse_options({"keep_rate": KEEP}))
    pruned = result.model
    # block conv1 filters leave physically: 8 -> 8 - int(2.4) = 6, 16 -> 12, 32 -> 23
    assert pruned.spec.block_widths == (6,) * 3 + (12,) * 3 + (23,) * 3
    assert pruned.spec.planes == model.spec.planes
    # the exact masked equivalent: zeroed filters plus their BN γ and β
    masked = copy.deepcopy(model)
    apply_channel_masks(masked, channel_masks(masked, result.kept))
    x = splits.val_x[:128].float().div(255).sub(splits.info.mean[0]).div(splits.info.std[0])
    with torch.no_grad():
        assert torch.allclose(masked.eval()(x), pruned.eval()(x), atol=1e-5)
    acc = evaluate(pruned, splits.val_x, splits.val_y, info=splits.info)
    assert acc == evaluate(masked, splits.val_x, splits.val_y, info=splits.info)
    # No fine-tune stage; zeroing after the last epoch leaves BN statistics stale in so short a run.
    recalibrated = evaluate(recalibrate_bn(copy.deepcopy(pruned), splits), splits.val_x, splits.val_y, info=splits.info)
    assert recalibrated > max(acc, 0.5)
    # ... which the `recalibrate_bn` option does as part of pruning (same default seed, same statistics)
    opts = METHOD.parse_options({"keep_rate": KEEP, "recalibrate_bn": True})
    deployed = METHOD.prune(model, splits, opts)
    assert deployed.info["bn_recalibrated"] and not result.info["bn_recalibrated"]
    assert evaluate(deployed.model, splits.val_x, splits.val_y, info=splits.info) == recalibrated
    # stem and block conv2 zeros stay in the residual sum: masks, int(C·0.3) filters each
    assert result.masks is not None and len(result.masks) == 1 + 9
    for key, mask in result.masks.items():
        rows = mask.flatten(1).all(1)
        assert int((~rows).sum()) == int(mask.shape[0] * 3 / 10), key
        assert torch.count_nonzero(pruned.get_submodule(key.removesuffix(".weight")).weight[~rows]) == 0


def test_prune_zeroes_a_plainly_trained_model_first() -> None:
    seed_everything(1)
    model = CifarResNetSpec.uniform(1, planes=(8, 16, 32), in_channels=1, input_size=8).build()
    result = METHOD.prune(model, None, METHOD.parse_options({"keep_rate": 0.5, "layers": ["layer1.0.conv1", "conv1"]}))
    assert set(result.kept) == {"layer1.0.conv1"} and len(result.kept["layer1.0.conv1"]) == 4
    assert set(result.masks) == {"conv1.weight"}
    norms = model.conv1.weight.detach().flatten(1).norm(dim=1)
    assert sorted((~result.masks["conv1.weight"].flatten(1).all(1)).nonzero().flatten().tolist()) == sorted(
        norms.argsort()[:4].tolist()
    )


def test_recipe_follows_the_sfp_schedule() -> None:
    full = sfp_recipe()
    assert (full.epochs, full.batch_size, full.weight_decay, full.nesterov) == (200, 128, 5e-4, True)
    assert [round(full.lr_at(e), 6) for e in (0, 1, 59, 60, 120, 160, 199)] == [0.01, 0.1, 0.1, 0.02, 0.004, 0.0008, 0.0008]
    assert sfp_recipe(pretrained=True).lr_at(1) == pytest.approx(0.01)
    assert sfp_recipe(100).milestones == (1, 30, 60, 80)
    opts = METHOD.parse_options({"pretrained": True})
    assert METHOD.finetune(opts, full) is None
    assert METHOD.recipe(opts, 100) == sfp_recipe(100, pretrained=True)


def test_zeroed_count_floors_the_pruned_number() -> None:
    seed_everything(0)
    model = CifarResNetSpec.uniform(1, planes=(32, 32, 32), in_channels=1, input_size=8).build()
    result = METHOD.prune(model, None, METHOD.parse_options({"keep_rate": 0.7, "layers": ["layer1.0.conv1"]}))
    assert len(result.kept["layer1.0.conv1"]) == 32 - 9  # keeps 23, where the L1 rule keeps 22


def test_deployed_model_is_the_soft_zeroed_one_minus_exactly_the_dropped_constants(trained: tuple) -> None:
    """Hard pruning drops, not folds, the constant relu(BN(0)) a removed channel still emitted (a padded
    next conv turns it into a position-dependent map no bias reproduces): the deployed model equals the
    soft-zeroed one with those channels' input slices cut, and `dropped_constant` says how large it was."""
    model, splits, _ = trained
    result = METHOD.prune(model, splits, METHOD.parse_options({"ratio": 0.3}))
    soft = copy.deepcopy(model).eval()
    x = splits.val_x[:64].float().div(255).sub(splits.info.mean[0]).div(splits.info.std[0])
    cut = copy.deepcopy(soft)
    expected = {}
    with torch.no_grad():
        for group, kept in result.kept.items():
            block = group.removesuffix(".conv1")
            removed = sorted(set(range(cut.get_submodule(group).out_channels)) - set(kept))
            bn = soft.get_submodule(f"{block}.bn1")
            const = torch.relu(bn.bias - bn.weight * bn.running_mean / torch.sqrt(bn.running_var + bn.eps))[removed]
            expected[group] = float(const.max()) if removed else 0.0
            cut.get_submodule(f"{block}.conv2").weight[:, removed] = 0  # what the removed channel fed on
        assert torch.allclose(cut(x), result.model.eval()(x), atol=1e-5)
        assert result.info["dropped_constant"] == pytest.approx(expected)
        if max(expected.values()) > 1e-3:  # then the soft-zeroed model really differs
            assert not torch.allclose(soft(x), result.model(x), atol=1e-4)
