"""Generic channel surgery driven by the zoo's channel groups (docs/methods.md §1.3, §1.5).

`prune_channels` builds the pruned spec and slices every tensor a group names;
`channel_masks` is its exact mask equivalent.  `build_loaded` builds a model
straight from a state dict, with no random initialisation to throw away.  `prune_foreign` handles models
outside the zoo through Torch-Pruning's dependency graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from prunebench.models.layers import ChannelSelection
from prunebench.models.spec import ModelSpec, attached_spec, normalize_kept


def _columns(kept: Sequence[int], repeat: int) -> torch.Tensor:
    """Indices along a member's dim: with `repeat` > 1 each channel owns `repeat` consecutive columns."""
    idx = torch.tensor(list(kept), dtype=torch.long)
    if repeat == 1:
        return idx
    return (idx[:, None] * repeat + torch.arange(repeat)).reshape(-1)


def build_loaded(spec: ModelSpec, state: dict[str, torch.Tensor], like: nn.Module) -> nn.Module:
    """`spec`'s model holding exactly `state`, on `like`'s device/dtype and in its train/eval mode.

    The model is built on the meta device, so no memory is filled and no random
    initialisation is paid for; `state` must then name every tensor (a strict load,
    which also checks the shapes).  Channel-selection indices always come from the
    spec.  The state's tensors are adopted, not copied: pass tensors nobody else holds.
    """
    with torch.device("meta"):
        new = spec.build()
    state = dict(state)
    for name, m in new.named_modules():
        if isinstance(m, ChannelSelection):
            state[f"{name}.indices"] = m.indices
    new.load_state_dict(state, assign=True)  # strict: a missing tensor would stay on meta
    ref = next(like.parameters())
    new.to(device=ref.device, dtype=ref.dtype)
    new.train(like.training)
    return new


def prune_channels(model: nn.Module, kept: dict[str, list[int]]) -> nn.Module:
    """A new zoo model keeping `kept[group]` channels of each named group, weights inherited.

    Group members are `index_select`-ed; every other tensor is cloned unchanged,
    except channel-selection indices, which come from the pruned spec.
    """
    spec = attached_spec(model)  # foreign models: see prune_foreign
    groups = spec.groups()
    norm = normalize_kept(groups, kept)
    new_spec = spec.with_kept(kept)
    slices: dict[str, list[tuple[int, torch.Tensor]]] = {}
    for g in groups:
        if g.name in norm:
            for key, dim, repeat in g.members:
                slices.setdefault(key, []).append((dim, _columns(norm[g.name], repeat)))
    state = {}
    for key, tensor in model.state_dict().items():
        sliced = tensor
        for dim, idx in slices.get(key, ()):
            sliced = sliced.index_select(dim, idx.to(tensor.device))
        state[key] = sliced if sliced is not tensor else tensor.clone()
    return build_loaded(new_spec, state, model)


def _mask_rows(masks: dict[str, torch.Tensor], key: str, shape: torch.Size, dim: int, drop: torch.Tensor) -> None:
    m = masks.setdefault(key, torch.ones(shape, dtype=torch.bool))
    m.index_fill_(dim, drop, False)


def channel_masks(model: nn.Module, kept: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    """Parameter name -> bool mask (full shape) that makes the model compute what `prune_channels` gives.

    "out" groups: the producer's filter and bias, and its BN's gamma and beta.
    "select" groups: the gamma and beta of the BN in front of the selection at the
    dropped positions (or, without such a BN, the consumers' input columns).
    """
    spec = attached_spec(model)  # foreign models: see prune_foreign
    groups = {g.name: g for g in spec.groups()}
    params = dict(model.named_parameters())
    masks: dict[str, torch.Tensor] = {}
    for name, keep in normalize_kept(list(groups.values()), kept).items():
        g = groups[name]
        drop = torch.tensor(sorted(set(range(g.size)) - set(keep)), dtype=torch.long)
        if not len(drop):
            continue
        if g.kind == "out":
            keys = [f"{g.producer}.weight", f"{g.producer}.bias"]
            if g.bn:
                keys += [f"{g.bn}.weight", f"{g.bn}.bias"]
            for key in keys:
                if key in params:
                    _mask_rows(masks, key, params[key].shape, 0, drop)
        elif g.bn:
            sel = model.get_submodule(name)
            assert isinstance(sel, ChannelSelection)
            positions = sel.indices.cpu()[drop]
            for key in (f"{g.bn}.weight", f"{g.bn}.bias"):
                _mask_rows(masks, key, params[key].shape, 0, positions)
        else:
            for consumer in g.consumers:
                key = f"{consumer}.weight"
                _mask_rows(masks, key, params[key].shape, 1, drop)
    return {key: m.to(params[key].device) for key, m in masks.items()}


def apply_channel_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero every masked-out entry of `model` in place."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, m in masks.items():
            params[key].masked_fill_(~m.to(params[key].device), 0)


def prune_foreign(model: nn.Module, example_input: torch.Tensor, kept: dict[str, list[int]]) -> nn.Module:
    """Prune output channels of a model outside the zoo with Torch-Pruning's DependencyGraph.

    `kept` maps the name of a Conv2d/Linear to the output channels to keep; all
    coupled layers (BN, consumers, residual partners) are pruned with it, so name
    one layer per coupled group.  The input model is left untouched; a pruned
    copy is returned (any optimizer must be built afresh).  The one adapter is
    `prune/depgraph.py`; a user model's copy carries its extended pruning record.
    """
    from prunebench.prune.depgraph import prune_kept

    return prune_kept(model, kept, example_input).model
