"""Channel surgery: zeroed channels removed physically change nothing; masks are exact."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench.errors import SpecError
from prunebench.models import ChannelSelection, build_model, spec_of, variant
from prunebench.prune.surgery import apply_channel_masks, channel_masks, prune_channels, prune_foreign

# (variant, width_mult, input size): small but structurally complete nets
NETS = [
    ("vgg16-l1", 0.125, 32),
    ("vgg11-slim-imagenet", 0.0625, 32),
    ("thinet-conv", 0.125, 32),
    ("resnet20", 0.5, 16),
    ("preresnet164", 0.25, 16),
    ("densenet40", 0.5, 16),
    ("resnet50", 0.125, 64),
    ("resnet50-2x", 1.0, 32),
    ("densenet-bc-100", 0.25, 16),
    ("preresnet110-basic18", 0.25, 16),
    ("resnet34", 0.125, 32),
    ("resnet26", 0.125, 32),
]


def _net(name: str, mult: float, size: int) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(variant(name, input_size=size, width_mult=mult))
    with torch.no_grad():  # non-trivial BN statistics and affine terms
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


def _random_kept(model: nn.Module, seed: int = 1) -> dict[str, list[int]]:
    gen = torch.Generator().manual_seed(seed)
    kept = {}
    for g in model.spec.groups():
        n = max(1, g.size // 2)
        kept[g.name] = sorted(torch.randperm(g.size, generator=gen)[:n].tolist())
    return kept


def _zero_dropped_by_hand(model: nn.Module, kept: dict[str, list[int]]) -> None:
    """Zero the dropped channels' filters, biases and BN gamma/beta (or the consumers' input columns)."""
    mods = dict(model.named_modules())
    with torch.no_grad():
        for g in model.spec.groups():
            drop = [i for i in range(g.size) if i not in set(kept[g.name])]
            if g.kind == "out":
                mods[g.producer].weight[drop] = 0
                if mods[g.producer].bias is not None:
                    mods[g.producer].bias[drop] = 0
                if g.bn:
                    mods[g.bn].weight[drop] = 0
                    mods[g.bn].bias[drop] = 0
            elif g.bn:
                pos = mods[g.name].indices[drop]
                mods[g.bn].weight[pos] = 0
                mods[g.bn].bias[pos] = 0
            else:
                for c in g.consumers:
                    mods[c].weight[:, drop] = 0


@pytest.mark.parametrize(("name", "mult", "size"), NETS)
def test_zeroed_channels_removed_physically_give_same_outputs(name: str, mult: float, size: int) -> None:
    model = _net(name, mult, size)
    kept = _random_kept(model)
    _zero_dropped_by_hand(model, kept)
    x = torch.randn(3, 3, size, size)
    pruned = prune_channels(model, kept)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    torch.testing.assert_close(pruned(x), model(x), atol=1e-5, rtol=1e-4)
    assert spec_of(pruned) == pruned.spec == model.spec.with_kept(kept)
    assert spec_of(build_model(pruned.spec)) == pruned.spec


@pytest.mark.parametrize(("name", "mult", "size"), NETS)
def test_channel_masks_are_exact(name: str, mult: float, size: int) -> None:
    model = _net(name, mult, size)
    kept = _random_kept(model, seed=2)
    x = torch.randn(3, 3, size, size)
    pruned = prune_channels(model, kept)
    masks = channel_masks(model, kept)
    params = dict(model.named_parameters())
    assert masks and all(m.shape == params[k].shape and m.dtype == torch.bool for k, m in masks.items())
    apply_channel_masks(model, masks)
    masked_out = model(x)
    torch.testing.assert_close(pruned(x), masked_out, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(prune_channels(model, kept)(x), masked_out, atol=1e-5, rtol=1e-4)


def test_kept_filters_are_the_requested_ones() -> None:
    model = _net("resnet20", 0.5, 16)
    g = model.spec.groups()[0]
    pruned = prune_channels(model, {g.name: [5, 1]})
    w = model.get_submodule(g.producer).weight
    assert torch.equal(pruned.get_submodule(g.producer).weight, w[[1, 5]])
    consumer = g.consumers[0]
    assert torch.equal(pruned.get_submodule(consumer).weight, model.get_submodule(consumer).weight[:, [1, 5]])


def test_selection_indices_compose() -> None:
    model = _net("densenet40", 0.5, 16)
    g = next(g for g in model.spec.groups() if g.kind == "select")
    once = prune_channels(model, {g.name: [0, 2, 3, 7]})
    twice = prune_channels(once, {g.name: [1, 3]})
    sel = twice.get_submodule(g.name)
    assert isinstance(sel, ChannelSelection)
    assert sel.indices.tolist() == [2, 7]
    assert spec_of(twice) == twice.spec


def test_bad_kept_sets_raise_spec_errors() -> None:
    model = _net("resnet20", 0.5, 16)
    name = model.spec.groups()[0].name
    with pytest.raises(SpecError, match="keep 0 channels"):
        prune_channels(model, {name: []})
    with pytest.raises(SpecError, match="out of range"):
        prune_channels(model, {name: [0, 99]})
    with pytest.raises(SpecError, match="unknown channel group"):
        prune_channels(model, {"nope": [0]})


def test_prune_foreign_on_a_plain_sequential() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3),
    ).eval()
    with torch.no_grad():
        net[0].weight[[0, 4, 6]] = 0
        net[0].bias[[0, 4, 6]] = 0
        net[1].weight[[0, 4, 6]] = 0
        net[1].bias[[0, 4, 6]] = 0
    x = torch.randn(2, 1, 8, 8)
    pruned = prune_foreign(net, x, {"0": [1, 2, 3, 5, 7]})
    assert pruned[0].out_channels == 5 and pruned[1].num_features == 5 and pruned[3].in_channels == 5
    assert net[0].out_channels == 8  # the input model is untouched
    torch.testing.assert_close(pruned(x), net(x), atol=1e-5, rtol=1e-4)
    with pytest.raises(SpecError, match="keep 0"):
        prune_foreign(net, x, {"0": []})


def test_sss_gates_are_carried_through_surgery() -> None:
    torch.manual_seed(0)
    model = build_model(variant("resnet41", input_size=32, width_mult=0.125).replace(gates=True)).eval()
    with torch.no_grad():
        for blk, _ in model.spec.block_names():
            model.get_submodule(blk).gate.weight.uniform_(0.2, 2.0)
    kept = _random_kept(model)
    _zero_dropped_by_hand(model, kept)
    x = torch.randn(2, 3, 32, 32)
    pruned = prune_channels(model, kept)
    assert pruned.spec.gates
    torch.testing.assert_close(pruned(x), model(x), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("name", "mult", "size"), [("preresnet164", 0.25, 16), ("resnet20", 0.5, 16)])
def test_prune_channels_fills_every_tensor_from_the_old_model(name: str, mult: float, size: int) -> None:
    model = _net(name, mult, size).double().train()  # the new model is built on meta: nothing may stay there
    full = {g.name: list(range(g.size)) for g in model.spec.groups()}
    new = prune_channels(model, full)
    old_state, new_state = model.state_dict(), new.state_dict()
    assert new_state.keys() == old_state.keys() and new.training
    for key, tensor in new_state.items():
        assert not tensor.is_meta and tensor.dtype == old_state[key].dtype, key
        assert torch.equal(tensor, old_state[key]), key
        assert tensor.data_ptr() != old_state[key].data_ptr(), key  # a copy: training one leaves the other
