"""Scratch arms: seeded fresh builds, and the sparsity-aware He re-init of masked convs."""

from __future__ import annotations

import math

import pytest
import torch

from prunebench.errors import ConfigError
from prunebench.models import ChannelSelection, PreResNetSpec, VGGSpec, build_model
from prunebench.prune.scratch import reinit_std, scratch_model
from prunebench.prune.surgery import channel_masks
from prunebench.train import seed_everything

SPEC = VGGSpec(cfg=(32, "M", 64, 64, "M", 64), in_channels=1, input_size=8)


def _random_masks(densities: dict[str, float]) -> dict[str, torch.Tensor]:
    model = build_model(SPEC)
    g = torch.Generator().manual_seed(0)
    params = dict(model.named_parameters())
    return {k: torch.rand(params[k].shape, generator=g) < d for k, d in densities.items()}


@pytest.mark.parametrize("reinit", ["sparse", "dense"])
def test_masked_convs_are_redrawn_with_he_fan_out_over_surviving_weights(reinit: str) -> None:
    densities = {"features.4.weight": 0.1, "features.7.weight": 0.5, "features.11.weight": 0.9}
    masks = _random_masks(densities)
    model, used = scratch_model(SPEC, seed=0, masks=masks, reinit=reinit)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        w = params[name]
        assert torch.equal(used[name], mask)
        assert not w[~mask].any()
        c_in = mask.shape[1]
        n = (int(mask.sum()) if reinit == "sparse" else mask.numel()) / c_in
        expected = math.sqrt(2.0 / n)
        assert reinit_std(mask, reinit) == pytest.approx(expected)
        assert w[mask].std().item() == pytest.approx(expected, rel=0.1)
        assert w[mask].mean().item() == pytest.approx(0.0, abs=0.15 * expected)
    # the sparse fan-out is the dense one divided by the density: a sparser layer gets larger weights
    if reinit == "sparse":
        std = {k: params[k][m].std().item() for k, m in masks.items()}
        assert std["features.4.weight"] > 2.5 * std["features.11.weight"]


def test_without_masks_it_is_the_seeded_build_of_the_spec() -> None:
    seed_everything(7)
    expected = build_model(SPEC).state_dict()
    model, masks = scratch_model(build_model(SPEC), seed=7)
    assert masks is None and model.spec == SPEC
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    other, _ = scratch_model(SPEC, seed=8)
    assert not torch.equal(other.features[0].weight, model.features[0].weight)


def test_unmasked_layers_keep_the_spec_init_and_channel_masks_zero_bn_too() -> None:
    model = build_model(SPEC)
    masks = channel_masks(model, {"features.4": [0, 2, 4]})
    scratch, _ = scratch_model(SPEC, seed=3, masks=masks)
    seed_everything(3)
    plain = build_model(SPEC)
    assert torch.equal(scratch.features[0].weight, plain.features[0].weight)  # not masked: untouched
    assert not scratch.features[4].weight[1].any() and scratch.features[4].weight[0].any()
    bn = scratch.features[5]
    assert not bn.weight[1].any() and not bn.bias[1].any() and bn.weight[0] == 1.0


def test_bad_reinit_and_mismatched_masks_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="reinit"):
        scratch_model(SPEC, seed=0, reinit="uniform")
    with pytest.raises(ConfigError):
        scratch_model(SPEC, seed=0, masks={"features.4.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(ConfigError):
        scratch_model(SPEC, seed=0, masks={"nope.weight": torch.ones(3, dtype=torch.bool)})


def test_selection_from_copies_the_pruned_models_channel_selection_indices() -> None:
    spec = PreResNetSpec.uniform("bottleneck", 1, planes=(4, 8), stem=4, in_channels=1, input_size=8)
    pruned = build_model(spec)
    final = pruned.select  # reads all 32 channels of the last block's output
    assert isinstance(final, ChannelSelection)
    with torch.no_grad():
        final.indices.copy_(torch.arange(31, -1, -1))  # a selection the spec does not hold
    scratch, _ = scratch_model(spec, seed=0, selection_from=pruned)
    assert torch.equal(scratch.select.indices, torch.arange(31, -1, -1))
    narrower = build_model(spec.replace(selections=spec.selections[:-1] + ((0, 1, 2),)))
    with pytest.raises(ConfigError, match="channel selection"):
        scratch_model(spec, seed=0, selection_from=narrower)
