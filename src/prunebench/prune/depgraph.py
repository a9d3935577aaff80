"""Structural pruning of any `nn.Module` through Torch-Pruning's dependency graph (DepGraph).

The library finds which widths are coupled (a conv with its BN and its consumers, every
layer tied to one residual sum, the slices of a concatenation, grouped convs); prunebench's
criteria decide which channels go: L1-norm (`l1`), SFP's L2 norm (`l2`), slimming's BN
|gamma| (`bn`), and how many: the same ratio per coupled group (L1-norm, SFP, uniform) or one
global threshold over every group's scores (slimming).

A coupled group is named after its first conv/linear in forward order (its "root").  Groups
whose channels reach the model's output (the classifier) are never pruned.  Every change is
written as a replayable record (`models/builder.py`): which channels of which layer, in order,
so the pruned architecture is rebuilt from the builder and the record alone.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from prunebench.errors import ConfigError, SpecError
from prunebench.models.builder import BuilderSpec, PruneOp
from prunebench.models.spec import attached_spec
from prunebench.prune.importance import bottom_k, exact_fraction, filter_l1, filter_l2, floor_count, keep_count, top_k

CRITERIA = ("l1", "l2", "bn")
_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.LayerNorm)


def is_user_model(model: nn.Module) -> bool:
    """Whether `model` is a user model described by a builder spec (not a zoo model)."""
    return isinstance(getattr(model, "spec", None), BuilderSpec)


def example_input(model: nn.Module) -> torch.Tensor:
    """One zero image at the spec's input shape, on the model's device (tracing needs only shapes)."""
    spec = attached_spec(model)
    p = next(model.parameters(), None)
    return torch.zeros(1, spec.in_channels, spec.input_size, spec.input_size, device=p.device if p is not None else "cpu")


@dataclass
class Coupled:
    """One coupled group of the traced model: its root layer, width and per-layer members."""

    name: str
    size: int
    group: Any  # torch_pruning Group (its items hold the pruning functions)
    producers: list[str]  # layers whose output channels these are (their filters score them)
    norms: list[str]  # normalisation layers scaling these channels (slimming's gammas)
    prunable: bool  # False when the channels reach the model's output


def _trace(model: nn.Module, example: torch.Tensor) -> Any:
    import torch_pruning as tp  # the version is pinned in pyproject; import lazily, it is heavy

    training = model.training
    model.eval()  # the tracing forward must not update BN running statistics
    try:
        with torch.enable_grad():  # the tracer follows autograd's graph (callers may run under no_grad)
            return tp.DependencyGraph().build_dependency(model, example_inputs=example)
    except Exception as e:  # the user's forward, or an op the tracer does not know
        raise SpecError(f"cannot trace the model's graph for pruning: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    finally:
        model.train(training)


def coupled_groups(model: nn.Module, graph: Any) -> list[Coupled]:
    """The model's coupled channel groups, in forward order of their roots."""
    names = {m: n for n, m in model.named_modules()}
    order = {n: i for i, n in enumerate(names.values())}
    out = []
    for group in graph.get_all_groups(root_module_types=list(_WEIGHTED)):
        producers, norms, consumed = [], [], False
        for item in group:
            module, fn = item.dep.target.module, item.dep.handler.__name__
            if module not in names:
                continue  # graph-internal nodes (sums, concatenations, reshapes)
            if isinstance(module, _WEIGHTED) and fn == "prune_out_channels":
                producers.append(names[module])
            elif isinstance(module, _NORMS):
                norms.append(names[module])
            elif fn == "prune_in_channels" and any(True for _ in module.parameters(recurse=False)):
                consumed = True
        if not producers:
            continue
        producers.sort(key=order.__getitem__)
        out.append(Coupled(producers[0], len(group[0].idxs), group, producers, norms, consumed))
    return sorted(out, key=lambda c: order[c.name])


def channel_scores(model: nn.Module, c: Coupled, criterion: str) -> torch.Tensor:
    """One score per channel of a coupled group: the sum over its producers' filter L1/L2 norms,
    or the mean |gamma| of its BNs (a channel tied to a residual sum is scaled by several)."""
    if criterion == "bn":
        gammas = [model.get_parameter(f"{n}.weight") for n in c.norms if getattr(model.get_submodule(n), "weight", None) is not None]
        if not gammas:
            raise ConfigError(f"method 'slimming': layer {c.name!r} has no BN scale to rank its channels by")
        return torch.stack([g.detach().abs().cpu() for g in gammas]).mean(0)
    norm = filter_l1 if criterion == "l1" else filter_l2
    return torch.stack([norm(model.get_parameter(f"{n}.weight")).cpu() for n in c.producers]).sum(0)


def _record(model: nn.Module, group: Any) -> list[PruneOp]:
    names = {m: n for n, m in model.named_modules()}
    ops: list[PruneOp] = []
    for item in group:
        module, fn = item.dep.target.module, item.dep.handler.__name__
        if module not in names:
            if isinstance(module, nn.Parameter):
                raise SpecError("pruning would change a bare nn.Parameter, which a pruning record cannot name")
            continue
        if not any(True for _ in module.parameters(recurse=False)) and not any(True for _ in module.buffers(recurse=False)):
            continue
        ops.append((names[module], "out" if fn == "prune_out_channels" else "in", tuple(sorted(int(i) for i in item.idxs))))
    return ops


@dataclass
class DepgraphPrune:
    """A pruned copy of a user model (its spec carries the extended record) and what was kept."""

    model: nn.Module
    kept: dict[str, list[int]]
    sizes: dict[str, int]
    ops: list[PruneOp]


def prune_kept(model: nn.Module, kept: Mapping[str, Sequence[int]], example: torch.Tensor | None = None) -> DepgraphPrune:
    """A pruned copy of `model` keeping `kept[layer]` output channels of each named layer (and with
    them every layer coupled to it).  `model` is left untouched.  A user model's copy gets the
    spec with the record appended; any other module is pruned too, without a spec."""
    pruned = copy.deepcopy(model)
    example = example_input(pruned) if example is None else example.to(next(pruned.parameters()).device)
    graph = _trace(pruned, example)
    modules = dict(pruned.named_modules())
    by_layer: dict[str, Coupled] = {}
    for c in coupled_groups(pruned, graph):
        for p in c.producers:
            by_layer.setdefault(p, c)
    ops: list[PruneOp] = []
    done: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}
    for name, keep in kept.items():
        layer = modules.get(name)
        if not isinstance(layer, _WEIGHTED):
            raise SpecError(f"layer {name!r} is not a conv or linear layer of the model")
        found = by_layer.get(name)
        if found is None:
            raise SpecError(f"layer {name!r}: its output channels cannot be pruned")
        c = found
        if c.name in done:
            raise SpecError(f"layer {name!r} is coupled with {c.name!r}: name one layer per coupled group")
        keep_set = {int(i) for i in keep}
        if not keep_set:
            raise SpecError(f"pruning would empty layer {name!r} (it would keep 0 of {c.size} channels)")
        if min(keep_set) < 0 or max(keep_set) >= c.size:
            raise SpecError(f"layer {name!r}: channel index out of range 0..{c.size - 1}")
        done[c.name], sizes[c.name] = sorted(keep_set), c.size
        drop = sorted(set(range(c.size)) - keep_set)
        if not drop:
            continue
        import torch_pruning as tp

        fn = tp.prune_conv_out_channels if isinstance(layer, nn.Conv1d | nn.Conv2d | nn.Conv3d) else tp.prune_linear_out_channels
        group = graph.get_pruning_group(layer, fn, idxs=drop)
        if not graph.check_pruning_group(group):
            raise SpecError(f"pruning layer {name!r} would empty a layer coupled with it")
        ops += _record(pruned, group)
        group.prune()
    if is_user_model(pruned):
        pruned.spec = attached_spec(pruned).with_pruning(ops)  # type: ignore[attr-defined]
    return DepgraphPrune(pruned, done, sizes, ops)


def _candidates(model: nn.Module, skip: Sequence[str] = ()) -> tuple[list[Coupled], Any]:
    graph = _trace(model, example_input(model))
    groups = [c for c in coupled_groups(model, graph) if c.prunable]
    known = {p for c in groups for p in c.producers}
    unknown = sorted(set(skip) - known)
    if unknown:
        raise ConfigError(f"skip names layers without prunable output channels: {', '.join(unknown)}")
    return [c for c in groups if not set(c.producers) & set(skip)], graph


def prune_per_group(model: nn.Module, ratio: float, criterion: str, *, skip: Sequence[str] = ()) -> DepgraphPrune:
    """Keep `int(C * (1 - ratio))` top-scored channels of every prunable coupled group (L1-norm, SFP's
    criterion, uniform).  A group that would keep none keeps one: structural pruning cannot empty a layer."""
    if criterion not in CRITERIA:
        raise ConfigError(f"unknown criterion {criterion!r}; choose one of: {', '.join(CRITERIA)}")
    groups, _ = _candidates(model, skip)
    kept = {c.name: top_k(channel_scores(model, c, criterion), max(1, keep_count(c.size, ratio))) for c in groups}
    return prune_kept(model, kept)


def zero_lowest_groups(model: nn.Module, ratio: float) -> dict[str, tuple[list[str], list[int]]]:
    """SFP's soft step on a user model, in place: in every prunable coupled group, zero the filters of
    its `int(C * ratio)` lowest channels (SFP floors the pruned count; at most C - 1) by the summed L2
    norm of the group's producing filters, in each producing layer (filter weights only, as SFP does).
    Returns, per group root, its producing layers and the zeroed channels."""
    groups, _ = _candidates(model)
    zeroed: dict[str, tuple[list[str], list[int]]] = {}
    for c in groups:
        drop = bottom_k(channel_scores(model, c, "l2"), min(c.size - 1, floor_count(c.size, exact_fraction(ratio))))
        with torch.no_grad():
            for name in c.producers:
                model.get_parameter(f"{name}.weight")[drop] = 0
        zeroed[c.name] = (list(c.producers), drop)
    return zeroed


def uniform_widths(spec: BuilderSpec) -> Callable[[float], BuilderSpec]:
    """The uniform-width baseline's architectures of a user model: `make(f)` is a fresh build of `spec`
    with every prunable coupled group cut to `max(1, int(C * f))` channels (the first ones: the weights
    are redrawn by the scratch arm, so which channels go does not matter), as a spec with the record.
    The model is traced once; each distinct set of widths is pruned once."""
    model = spec.build()
    groups, _ = _candidates(model)
    if not groups:
        raise ConfigError(f"uniform: {spec.label} has no prunable coupled channel groups")
    made: dict[tuple[int, ...], BuilderSpec] = {}

    def make(factor: float) -> BuilderSpec:
        keep = tuple(max(1, int(c.size * factor)) for c in groups)
        if keep not in made:
            pruned = prune_kept(model, {c.name: range(k) for c, k in zip(groups, keep, strict=True)})
            made[keep] = attached_spec(pruned.model)  # type: ignore[assignment]
        return made[keep]

    return make


def prune_global(model: nn.Module, ratio: float, criterion: str = "bn", *, min_channels: int = 1) -> DepgraphPrune:
    """Slimming's rule: one threshold over every prunable group's scores, at the entry `int(total * ratio)`
    of the sorted scores; a group left with fewer than `min_channels` keeps its best ones."""
    groups, _ = _candidates(model)
    if not groups:
        raise ConfigError("the model has no prunable coupled channel groups")
    scores = {c.name: channel_scores(model, c, criterion) for c in groups}
    everything = torch.sort(torch.cat(list(scores.values()))).values
    threshold = float(everything[floor_count(everything.numel(), exact_fraction(ratio))])
    kept = {}
    for c in groups:
        survivors = (scores[c.name] > threshold).nonzero().flatten().tolist()
        if len(survivors) < min(min_channels, c.size):
            survivors = top_k(scores[c.name], min(min_channels, c.size))
        kept[c.name] = survivors
    return prune_kept(model, kept)
