"""Sampling of layer activations for the reconstruction-based pruners (ThiNet, regression).

Both methods look at one *consumer* layer at a time: a conv (or the classifier
Linear) whose input channels are the channel group being pruned.  We run a
seeded, class-balanced set of training images (no augmentation) through the
network, catch the consumer's input with a forward pre-hook and cut out, for
every image, the K = k_h*k_w input window of a few random output positions.  The
forward pass stops as soon as everything asked for has been caught, so early
layers are cheap to sample.

A `SamplingCache` lets the next layer's pass start where this layer's pruning
left the network unchanged: the input of the module that holds the producer being
pruned, caught during this pass, is exactly what the next pass would recompute
from the images (same batches, same weights before it).  The network's trunk (a
chain of modules each feeding the next, found from the module tree and checked
on every pass by tensor identity) is where such a start can be.

Positions depend only on (seed, number of images, number of output positions),
so sampling the original and the pruned network with the same seed gives
aligned samples, which the regression method needs (target from the original
net, inputs from the pruned one).

The module also holds what both layer-wise methods share: per-layer keep counts
from a ratio or a named target, float64 least squares, and per-layer timers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.data import batches
from prunebench.errors import ConfigError, SpecError
from prunebench.models import ChannelGroup, ModelSpec, variant
from prunebench.prune.importance import floor_count


class _Stop(Exception):
    """Raised by the last hook to cut the forward pass short."""


@dataclass
class LayerSample:
    """Samples of one consumer layer.

    x: N × C × K input windows of a conv consumer (K = window size), or N × F
       inputs of a Linear consumer (use `as_channels` to group its columns).
    points: name -> N × C' feature vectors at the same output positions (see `sample_layer`).
    images / locations: how the N = images × locations samples were drawn.
    """

    x: torch.Tensor
    points: dict[str, torch.Tensor]
    images: int
    locations: int

    @property
    def samples(self) -> int:
        return int(self.x.shape[0])

    def record(self) -> dict[str, int]:
        return {"images": self.images, "locations": self.locations, "samples": self.samples}


def balanced_images(splits: Any, count: int, seed: int) -> torch.Tensor:
    """`count` training images, as even over the classes as possible, normalised, no augmentation."""
    if splits is None:
        raise ConfigError("this method samples activations of training images: give it a data set")
    y = splits.train_y
    if count < 1:
        raise ConfigError("the number of sampling images must be at least 1")
    g = torch.Generator().manual_seed(seed)
    classes = torch.unique(y)
    per_class = [count // len(classes) + (1 if i < count % len(classes) else 0) for i in range(len(classes))]
    chosen = []
    for c, n in zip(classes.tolist(), per_class):
        idx = torch.nonzero(y == c).flatten()
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:n]])
    index = torch.cat(chosen).sort().values
    x, yy = splits.train_x[index], y[index]
    return torch.cat([xb for xb, _ in batches(x, yy, info=splits.info, batch_size=512, train=False)])


class SamplingCache:
    """Activations kept from one sampling pass so the next starts from them instead of the images.

    `start`: index into the trunk of the module whose input `inputs` holds (one tensor per
    sampling batch); no inputs = start from the images.  Only valid while nothing before
    that module changes: the layer-wise pruners change the network from the producer on.
    `max_bytes`: a bigger capture is dropped (the next pass starts from the images).
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self.start = 0
        self.inputs: list[torch.Tensor] | None = None
        self.batch_size: int | None = None
        self.passes_resumed = 0

    def clear(self) -> None:
        self.start, self.inputs = 0, None


def trunk(model: nn.Module) -> list[str]:
    """Candidate chain: the model's leaf children in registration order, nn.Sequential containers
    expanded.  `sample_layer` checks on every pass how far it really is a chain (each module's
    input is the previous one's output object, the first one's is the model input).  Resuming
    also needs the forward to read earlier values only through the chain (no reuse of the
    input further on), which holds for every zoo family: only zoo models are resumed."""
    names: list[str] = []

    def walk(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            if isinstance(child, nn.Sequential):
                walk(f"{prefix}{name}.", child)
            else:
                names.append(f"{prefix}{name}")

    walk("", model)
    return names


def _trunk_index(names: list[str], module: str) -> int | None:
    """Index of the trunk element that is `module` or contains it."""
    for i, name in enumerate(names):
        if module == name or module.startswith(name + "."):
            return i
    return None


def _passthrough(x: torch.Tensor) -> torch.Tensor:
    return x


class _TrunkWatch:
    """Hooks on the trunk while one pass runs: elements before `start` become pass-throughs (the
    fed tensor is their cached output), the links from `start` to `capture` are checked by tensor
    identity, and the input of element `capture` is kept for every batch."""

    def __init__(self, model: nn.Module, names: list[str], start: int, capture: int | None, max_bytes: int) -> None:
        self.modules = [model.get_submodule(n) for n in names]
        self.start, self.capture, self.max_bytes = start, capture, max_bytes
        self.captured: list[torch.Tensor] = []
        self.size = 0
        self.start_ok = True  # every batch's fed tensor reached element `start` untouched
        self.chain_ok = True  # ... and every link up to `capture` held
        self.fed: torch.Tensor | None = None
        self._last: tuple[int, Any] | None = None
        self._handles: list[Any] = []

    def __enter__(self) -> _TrunkWatch:
        for m in self.modules[: self.start]:
            m.forward = _passthrough
        last = self.start if self.capture is None else self.capture
        for i in range(self.start, min(last, len(self.modules) - 1) + 1):
            m = self.modules[i]
            self._handles.append(m.register_forward_pre_hook(lambda _m, a, i=i: self._enter(i, a)))
            self._handles.append(m.register_forward_hook(lambda _m, _a, o, i=i: self._leave(i, o)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        for m in self.modules[: self.start]:
            m.__dict__.pop("forward", None)

    def batch(self, fed: torch.Tensor) -> None:
        self.fed, self._last = fed, None

    def _enter(self, i: int, args: tuple[Any, ...]) -> None:
        if i == self.start:
            ok = bool(args) and args[0] is self.fed and self._last is None
            self.start_ok = self.start_ok and ok
        else:
            ok = bool(args) and self._last is not None and self._last[0] == i - 1 and args[0] is self._last[1]
        self.chain_ok = self.chain_ok and ok
        if i == self.capture and self.chain_ok:
            self.size += args[0].numel() * args[0].element_size()
            self.captured.append(args[0])
            if self.size > self.max_bytes:
                self.chain_ok = False  # too big to keep: the next pass starts from the images
                self.captured.clear()

    def _leave(self, i: int, out: Any) -> None:
        self._last = (i, out)


def _positions(images: int, total: int, locations: int, seed: int) -> torch.Tensor:
    """images × locations output positions in [0, total), without replacement where possible."""
    g = torch.Generator().manual_seed(seed)
    if locations <= total:
        return torch.rand(images, total, generator=g).argsort(dim=1)[:, :locations]
    return torch.randint(total, (images, locations), generator=g)


def _zero_padding(conv: nn.Conv2d) -> tuple[int, ...]:
    """`conv`'s numeric padding; SpecError for a conv whose windows cannot be sampled."""
    if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise SpecError(f"activation sampling supports plain zero-padded convs only, not {conv}")
    return conv.padding


def _windows(
    inp: torch.Tensor, conv: nn.Conv2d, rows: torch.Tensor, cols: torch.Tensor, img: torch.Tensor
) -> torch.Tensor:
    """The input windows of `conv` at output positions (rows, cols) of images `img`: n × C × K."""
    ph, pw = _zero_padding(conv)
    sh, sw = conv.stride
    dh, dw = conv.dilation
    kh, kw = conv.kernel_size
    xp = F.pad(inp, (pw, pw, ph, ph))
    r = rows[:, None] * sh + torch.arange(kh, device=inp.device) * dh  # n × kh
    c = cols[:, None] * sw + torch.arange(kw, device=inp.device) * dw  # n × kw
    # advanced indices separated by a slice go first: result is n × kh × kw × C
    win = xp[img[:, None, None], :, r[:, :, None], c[:, None, :]]
    return win.permute(0, 3, 1, 2).reshape(len(img), inp.shape[1], kh * kw)


def _out_size(inp: torch.Tensor, conv: nn.Conv2d) -> tuple[int, int]:
    h, w = inp.shape[-2:]
    (ph, pw), (sh, sw), (dh, dw), (kh, kw) = _zero_padding(conv), conv.stride, conv.dilation, conv.kernel_size
    return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1


@torch.no_grad()
def sample_layer(
    model: nn.Module,
    consumer: str,
    images: torch.Tensor,
    *,
    locations: int,
    seed: int,
    points: Sequence[tuple[str, str, str]] = (),
    batch_size: int = 128,
    cache: SamplingCache | None = None,
    cache_at: str | None = None,
) -> LayerSample:
    """Sample the input windows of module `consumer` over `images`.

    points: (key, module name, "in"|"out") triples: also return that module's
      input or output feature vector (N × C') at the consumer's sampled output
      positions; used for residual error compensation (the block input / shortcut
      output where the branch's last conv writes).  Those maps must have the
      consumer's output spatial size.
    cache: start from its activations when it holds some, and refill it with the input
      of the trunk element holding module `cache_at` (the caller is about to change
      the network from there on).  The samples are the same as without a cache.
    """
    if cache is None or not isinstance(getattr(model, "spec", None), ModelSpec):
        return _sample_pass(model, consumer, images, locations, seed, points, batch_size, None, None)
    names = trunk(model)
    start = cache.start if cache.inputs is not None and cache.batch_size == batch_size else 0
    wanted = [_trunk_index(names, m) for m in (consumer, *(name for _, name, _ in points))]
    if any(i is None or i < start for i in wanted):
        start = 0  # something asked for lies before the cached activations
    capture = _trunk_index(names, cache_at) if cache_at is not None else None
    if capture is not None and capture < start:
        capture = None
    watch = _TrunkWatch(model, names, start, capture, cache.max_bytes)
    sample = _sample_pass(model, consumer, images, locations, seed, points, batch_size, cache.inputs if start else None, watch)
    if start and not watch.start_ok:  # cannot happen for a chain checked on earlier passes: redo from the images
        cache.clear()
        return sample_layer(model, consumer, images, locations=locations, seed=seed, points=points,
                            batch_size=batch_size, cache=cache, cache_at=cache_at)  # fmt: skip
    cache.passes_resumed += bool(start)
    batches_run = -(-len(images) // batch_size)
    if capture is not None and watch.chain_ok and len(watch.captured) == batches_run:
        cache.start, cache.inputs, cache.batch_size = capture, watch.captured, batch_size
    else:
        cache.clear()
    return sample


def _sample_pass(
    model: nn.Module,
    consumer: str,
    images: torch.Tensor,
    locations: int,
    seed: int,
    points: Sequence[tuple[str, str, str]],
    batch_size: int,
    resume: list[torch.Tensor] | None,
    watch: _TrunkWatch | None,
) -> LayerSample:
    """One forward pass per batch, from the images or from the cached `resume` inputs."""
    modules = dict(model.named_modules())
    if consumer not in modules:
        raise SpecError(f"model has no module {consumer!r}")
    layer = modules[consumer]
    if not isinstance(layer, nn.Conv2d | nn.Linear):
        raise SpecError(f"{consumer} is a {type(layer).__name__}; only Conv2d and Linear consumers can be sampled")
    device = next(model.parameters()).device
    state: dict[str, Any] = {}
    xs: list[torch.Tensor] = []
    pts: dict[str, list[torch.Tensor]] = {key: [] for key, _, _ in points}
    pending: set[str] = set()
    offset = 0

    def batch_positions(b: int, oh: int, ow: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(image index, flat position) of this batch's samples; whichever hook fires first fixes the grid."""
        if "grid" not in state:
            state["grid"] = (oh, ow)
            state["pos"] = _positions(len(images), oh * ow, locations, seed)
        if state["grid"] != (oh, ow):
            raise SpecError(f"a sampled map is {oh}x{ow}, the consumer {consumer!r} writes {state['grid']}")
        pos = state["pos"][offset : offset + b]
        return torch.arange(b).repeat_interleave(pos.shape[1]), pos.reshape(-1)

    def grab_consumer(_m: nn.Module, args: tuple[Any, ...]) -> None:
        inp = args[0]
        b = inp.shape[0]
        if isinstance(layer, nn.Linear):
            xs.append(inp.reshape(b, -1).float().cpu())
            state["locations"] = 1
        else:
            oh, ow = _out_size(inp, layer)
            img, flat = batch_positions(b, oh, ow)
            img, flat = img.to(inp.device), flat.to(inp.device)
            xs.append(_windows(inp, layer, flat // ow, flat % ow, img).float().cpu())
            state["locations"] = locations
        pending.discard(consumer)
        maybe_stop()

    def grab_point(key: str, t: torch.Tensor) -> None:
        oh, ow = t.shape[-2:]
        img, flat = batch_positions(t.shape[0], oh, ow)
        img, flat = img.to(t.device), flat.to(t.device)
        pts[key].append(t[img, :, flat // ow, flat % ow].float().cpu())
        pending.discard(key)
        maybe_stop()

    def maybe_stop() -> None:
        if not pending:
            raise _Stop

    handles = [layer.register_forward_pre_hook(grab_consumer)]
    for key, name, where in points:
        if name not in modules:
            raise SpecError(f"model has no module {name!r}")
        if where == "in":
            handles.append(modules[name].register_forward_pre_hook(lambda _m, a, k=key: grab_point(k, a[0])))
        else:
            handles.append(modules[name].register_forward_hook(lambda _m, _a, o, k=key: grab_point(k, o)))
    was_training = model.training
    model.eval()
    try:
        with watch or contextlib.nullcontext():
            for b, start in enumerate(range(0, len(images), batch_size)):
                batch = resume[b] if resume is not None else images[start : start + batch_size].to(device)
                if watch is not None:
                    watch.batch(batch)
                pending.clear()
                pending.update([consumer, *(key for key, _, _ in points)])
                offset = start
                try:
                    model(batch)
                except _Stop:
                    pass
                if pending:
                    raise SpecError(f"the forward pass never reached {', '.join(sorted(pending))}")
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return LayerSample(
        x=torch.cat(xs),
        points={k: torch.cat(v) for k, v in pts.items()},
        images=len(images),
        locations=state["locations"],
    )


def consumer_weight(layer: nn.Module, channels: int) -> torch.Tensor:
    """The consumer's weight as n × C × K (K = window size, or columns per channel of a Linear)."""
    w = layer.get_parameter("weight").detach()
    return w.reshape(w.shape[0], channels, -1)


def as_channels(sample: LayerSample, channels: int) -> torch.Tensor:
    """`sample.x` reshaped to N × channels × K (a Linear consumer's columns grouped per channel)."""
    return sample.x.reshape(sample.x.shape[0], channels, -1)


def contributions(x: torch.Tensor, weight: torch.Tensor, seed: int) -> torch.Tensor:
    """ThiNet's per-channel contributions x̂_c = Σ_k W_{d,c,k} x_{c,k}, one random output channel d per sample.

    x: N × C × K windows; weight: n × C × K. Returns N × C (float64).
    """
    g = torch.Generator().manual_seed(seed)
    d = torch.randint(weight.shape[0], (x.shape[0],), generator=g)
    return torch.einsum("nck,nck->nc", x.double(), weight.double()[d])


# -- the layer-wise plan shared by ThiNet and the regression method ------------------------


@dataclass
class LayerPlan:
    """Which groups to prune, to how many channels; the target spec if named."""

    keep: dict[str, int]
    target: ModelSpec | None = None


def plan_layers(
    spec: ModelSpec,
    *,
    ratio: float | None,
    target_name: str | None,
    eligible: Callable[[ChannelGroup], bool],
    allowed: Sequence[str],
    default_skip: Callable[[ChannelGroup], bool] | None = None,
) -> LayerPlan:
    """Resolve per-group keep counts from a keep ratio or a named zoo variant.

    eligible(group) -> bool says which groups the method may prune at all.
    default_skip(group) -> bool marks groups a plain ratio leaves whole (e.g. VGG's
    last conv, whose consumer is the classifier).
    A named target must match the model's groups by name; its widths are hit exactly.
    """
    groups = [g for g in spec.groups() if eligible(g)]
    if target_name is None:
        if ratio is None:
            raise ConfigError("give a keep ratio or a named target")
        by_ratio = {
            g.name: max(1, floor_count(g.size, ratio)) for g in groups if not (default_skip and default_skip(g))
        }
        return LayerPlan(keep=by_ratio)
    if target_name not in allowed:
        raise ConfigError(f"unknown target {target_name!r}; known: {', '.join(allowed)}")
    target = variant(
        target_name, num_classes=spec.num_classes, in_channels=spec.in_channels, input_size=spec.input_size
    )
    wanted = {g.name: g.size for g in target.groups()}
    keep: dict[str, int] = {}
    for g in groups:
        if g.name not in wanted:
            raise SpecError(f"target {target_name} has no channel group {g.name}; is the model a matching base?")
        if wanted[g.name] > g.size:
            raise SpecError(f"target {target_name} wants {wanted[g.name]} channels in {g.name}, the model has {g.size}")
        if wanted[g.name] < g.size:
            keep[g.name] = wanted[g.name]
    return LayerPlan(keep=keep, target=target)


# A singular system (rank-deficient windows: dead channels, zero padding, fewer samples
# than unknowns) is first retried with this relative ridge: Cholesky then succeeds and
# the residual equals the minimum-norm solution's to ~1e-10 relative (bench/prune_speed.md:
# 0.3 s instead of the SVD's 3.5 s on a 2304-unknown VGG-16 layer).
SINGULAR_RIDGE = 1e-10


def solve_normal(normal: torch.Tensor, rhs: torch.Tensor, ridge: float = 0.0) -> torch.Tensor:
    """Least squares from the normal equations (float64): Cholesky; for a singular system
    Cholesky with a tiny relative ridge (`SINGULAR_RIDGE`), and only if that fails too the
    minimum-norm solution (SVD-based `gelsd`).

    ridge: Tikhonov term relative to the mean diagonal (0 = plain least squares).
    """
    normal, rhs = normal.double(), rhs.double()
    eye = torch.eye(normal.shape[0], dtype=torch.float64)
    scale = normal.diagonal().mean()
    if ridge:
        normal = normal + ridge * scale * eye
    factor, info = torch.linalg.cholesky_ex(normal)
    if int(info) == 0:
        return torch.cholesky_solve(rhs, factor)
    factor, info = torch.linalg.cholesky_ex(normal + SINGULAR_RIDGE * scale * eye)
    if int(info) == 0:
        return torch.cholesky_solve(rhs, factor)
    return torch.linalg.lstsq(normal, rhs, driver="gelsd").solution


class Timer:
    """Per-layer phase timings collected into a JSON-able dict."""

    def __init__(self) -> None:
        self.layers: dict[str, dict[str, float]] = {}

    @contextmanager
    def phase(self, layer: str, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            row = self.layers.setdefault(layer, {})
            row[name] = round(row.get(name, 0.0) + time.perf_counter() - t0, 6)

    def record(self) -> dict[str, dict[str, float]]:
        return self.layers


def check_sampling_target(method: str, opts: Any, targets: Sequence[str]) -> None:
    """Option checks ThiNet and regression share: exactly one of ratio/variant, sane sampling sizes."""
    if (opts.ratio is None) == (opts.variant is None):
        raise ConfigError(f"{method}: give exactly one of ratio and variant")
    if opts.ratio is not None and not 0 <= opts.ratio < 1:  # the fraction removed
        raise ConfigError(f"{method}: ratio (the fraction removed) must be in [0, 1), got {opts.ratio}")
    if opts.variant is not None and opts.variant not in targets:
        raise ConfigError(f"{method}: unknown variant {opts.variant!r}; known: {', '.join(targets)}")
    if opts.images < 1 or opts.locations < 1 or opts.ridge < 0:
        raise ConfigError(f"{method}: images and locations must be >= 1, ridge >= 0")
