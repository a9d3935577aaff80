"""Training K same-architecture models together: one vmapped forward/backward, K ordinary runs.

The seeds of an arm share an architecture, so `train_group` steps them together: each step
stacks the K models' parameters and BatchNorm buffers, runs one `torch.func.vmap` of
`functional_call` over them and the K members' own batches (`[K, B, ...]`), and back-propagates
the sum of the K mean losses (the models are independent, so each model's gradient is its solo
gradient; autograd lands it in that model's own `.grad` through the stack). Everything else is
the solo trainer's code, per member: `prepare_run` (optimizer, callbacks, context), `open_run`
(seed, resume), `check_loss`, `take_step` (callbacks' gradient edits, optimizer step, counters),
`end_epoch` (evaluation, metrics, checkpoint) and `finish_run` (`final/`, `best/`, `result.json`),
so each member's folder is laid out exactly as a solo run's, and a stage's identity does not
change because it trained in a group. Each member keeps its own data order and augmentation
(`epoch_generator(seed, epoch)`, as alone), its own BatchNorm running statistics (written back
into its module after every step) and its own global-RNG stream: the stream is swapped in around
all of that member's own code, so the RNG state saved in its checkpoints is the one it would have
saved alone (the vmapped forward draws no random numbers: `groupable` refuses dropout).

Equivalence with solo `train()` (tests/train/test_batched.py, fp32, CPU, 2-3 epochs of digits,
VGG and ResNet-20 with BN, masks, the slimming penalty): parameters and BN buffers within
max abs diff 1e-4 (measured 1e-6, 2e-5 for one ResNet-20 seed), validation and test accuracy
equal up to one image. The difference is summation order only: vmap runs a convolution of K
models as one grouped convolution. Ill-conditioned training magnifies it as it magnifies any
float noise (a filter zeroed by a callback gives its BN channel zero variance, whose gradient is
noise times 1/sqrt(eps); ResNet-20 at lr 0.05 on 8x8 digits differs from itself by 1e-3 between
1 and 2 threads). A group is deterministic in itself: a killed group resumed with the same
members gives bit-identical results.

Resume: members whose `result.json` exists are loaded as `train()` does; the rest restore their
own `state/`. Each group epoch trains the members that are furthest behind, so a member that lost
its last checkpoint (a kill between two members' saves) catches up first, in a smaller group, and
then the whole group goes on (equal within the tolerance above, no longer bit-identical).

A member whose loss becomes non-finite fails as it would alone (its `state/` keeps its last good
epoch); the others go on to the end, and then `GroupError` (a PrunebenchError) is raised: its message
counts the failed members and names the first; `results` and `errors` hold every member's outcome.

`torch.compile` and data-parallel runs (torchrun) are not vmapped: the members then train one
after the other with `train()`.

Measured speed (bench/batched_train.md, this project's 2-core CPU, bf16 auto): grouping LOSES.
K models together ran at 0.35-0.78x the images/s of the same K one after the other (demo
VGG-11 at width 0.25 and ResNet-20, K = 1, 3, 5), falling as K grows; even K = 1 is 1.3-2x slower
than `train()`, so the cost is vmap's grouped convolutions on the CPU, not the group. The
grouping policy should not group on a CPU; on a GPU (not measured: none was lent) small nets
leave the device idle, which is where grouping is expected to win - measure it there first.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn import functional as F

from prunebench.data import Splits, batches
from prunebench.errors import PrunebenchError
from prunebench.train import distributed
from prunebench.train.callbacks import Callback
from prunebench.train.checkpoint import Masks
from prunebench.train.loop import (
    EpochTally,
    Run,
    begin_epoch,
    check_loss,
    end_epoch,
    finish_run,
    finished_result,
    open_run,
    prepare_run,
    record_train_metrics,
    take_step,
    train,
)
from prunebench.train.recipe import Recipe
from prunebench.train.result import RESULT_FILE, TrainResult
from prunebench.train.seeding import epoch_generator, rng_state, set_rng_state
from prunebench.train.speed import resolve_speed
from prunebench.train.threads import adapt_threads

# Layers that draw random numbers in training: one shared forward cannot give each model its own stream.
_RANDOM_LAYERS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                  nn.FeatureAlphaDropout, nn.RReLU)  # fmt: skip


@dataclass
class Member:
    """One model of a group: what `train()` would be called with for it alone."""

    model: nn.Module
    out_dir: Path
    seed: int
    callbacks: Sequence[Callback] = field(default_factory=tuple)
    masks: Masks | None = None


class GroupError(PrunebenchError):
    """Some members of a group failed (non-finite loss); the others finished.

    `results[i]` is member i's result (None if it failed); `errors[i]` its error."""

    def __init__(self, results: list[TrainResult | None], errors: dict[int, PrunebenchError],
                 members: Sequence[Member]) -> None:
        first = min(errors)
        super().__init__(f"{len(errors)} of {len(results)} grouped runs failed; "
                         f"{members[first].out_dir}: {errors[first]}")
        self.results, self.errors = results, errors


def groupable(models: Sequence[nn.Module]) -> str | None:
    """Why these models cannot train as one group (None: they can). Masks do not matter (per model)."""
    if len(models) < 2:
        return "fewer than two models"
    first = models[0]
    spec = getattr(first, "spec", None)
    shapes = _layout(first)
    for i, m in enumerate(models[1:], 1):
        if type(m) is not type(first) or getattr(m, "spec", None) != spec:
            return f"model {i} has another architecture than model 0"
        if _layout(m) != shapes:
            return f"model {i}'s parameters or buffers differ in name, shape, dtype or device from model 0's"
    for name, module in first.named_modules():
        if isinstance(module, _RANDOM_LAYERS) and getattr(module, "p", 1.0) != 0:
            return f"{name or 'the model'} ({type(module).__name__}) draws random numbers in training"
    return _bn_reason(first)


def _bn_reason(model: nn.Module) -> str | None:
    for name, module in model.named_modules():
        # A cumulative average reads num_batches_tracked as a Python number, which vmap cannot do.
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats \
                and module.momentum is None:
            return f"{name} (BatchNorm with momentum=None) keeps a cumulative average vmap cannot batch"
    return None


def _layout(model: nn.Module) -> list[tuple[str, tuple[int, ...], torch.dtype, str]]:
    tensors = [*model.named_parameters(), *model.named_buffers()]
    return [(n, tuple(t.shape), t.dtype, t.device.type) for n, t in tensors]


def train_group(
    members: Sequence[Member],
    splits: Splits,
    recipe: Recipe,
    *,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    eval_test: bool = True,
    test_every_epoch: bool = False,
    tensorboard: bool = True,
) -> list[TrainResult]:
    """Train every member as `train()` would train it alone; results in the members' order.

    The models must pass `groupable` (one member is fine). See the module docstring for the
    tolerance, resume and failure rules; `GroupError` if any member's loss became non-finite.
    """
    if len(members) > 1 and (reason := groupable([m.model for m in members])):
        raise PrunebenchError(f"these models cannot train as a group: {reason}")
    if len({Path(m.out_dir).resolve() for m in members}) < len(members):
        raise PrunebenchError("two members of a group share an output folder")
    speed = resolve_speed(recipe, distributed.rank_device(device))
    if speed.compile or distributed.active() is not None:
        return [train(m.model, splits, recipe, m.out_dir, seed=m.seed, callbacks=m.callbacks, masks=m.masks,
                      device=device, progress=progress, eval_test=eval_test, test_every_epoch=test_every_epoch,
                      tensorboard=tensorboard) for m in members]  # fmt: skip
    runs = [prepare_run(m.model, splits, recipe, Path(m.out_dir), seed=m.seed, callbacks=m.callbacks,
                        masks=m.masks, speed=speed, progress=progress, test_every_epoch=test_every_epoch,
                        tensorboard=tensorboard) for m in members]  # fmt: skip
    results: list[TrainResult | None] = [None] * len(runs)
    group = _Group(runs, splits)
    try:
        for i, run in enumerate(runs):
            if (run.ctx.out_dir / RESULT_FILE).exists():
                results[i] = finished_result(run.ctx)
                continue
            with group.rng(i):
                open_run(run.ctx, run.ctx.out_dir)
                for cb in run.ctx.callbacks:
                    cb.on_train_start(run.ctx)
            group.active.append(i)
        while todo := [i for i in group.active if runs[i].ctx.epoch < recipe.epochs]:
            behind = min(runs[i].ctx.epoch for i in todo)
            group.run_epoch([i for i in todo if runs[i].ctx.epoch == behind])
        for i in group.active:
            with group.rng(i):
                for cb in runs[i].ctx.callbacks:
                    cb.on_train_end(runs[i].ctx)
    finally:
        for run in runs:
            run.close()
    for i in group.active:
        with group.rng(i):
            results[i] = finish_run(runs[i].ctx, eval_test)
    if group.errors:
        raise GroupError(results, group.errors, members)
    return [r for r in results if r is not None]


def _bf16_as_autocast(skeleton: nn.Module) -> None:
    """Run the skeleton's convolutions and linear layers in bf16 as autocast does alone: vmap's
    rules for them with batched weights run below autocast (measured: fp32 outputs under
    `torch.autocast`), so cast by hand. BatchNorm then gets bf16 input, which vmap's rule cannot
    mix with fp32 statistics: it runs in fp32 and rounds its output to bf16 (what the CPU's
    mixed-precision BatchNorm does alone)."""
    dt = torch.bfloat16
    for module in skeleton.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            conv = module._conv_forward

            def cast(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, conv: Any = conv) -> Any:
                return conv(x.to(dt), weight.to(dt), None if bias is None else bias.to(dt))

            module._conv_forward = cast  # type: ignore[method-assign,assignment]
        elif isinstance(module, nn.Linear):

            def linear(x: torch.Tensor, layer: nn.Linear = module) -> torch.Tensor:
                bias = None if layer.bias is None else layer.bias.to(dt)
                return F.linear(x.to(dt), layer.weight.to(dt), bias)

            module.forward = linear  # type: ignore[method-assign,assignment]
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            norm = module.forward

            def fp32(x: torch.Tensor, norm: Any = norm) -> Any:
                return norm(x.float()).to(x.dtype)

            module.forward = fp32  # type: ignore[method-assign,assignment]


class _Group:
    """The members still training, their RNG streams, and the vmapped step over any subset of them."""

    def __init__(self, runs: list[Run], splits: Splits) -> None:
        self.runs = runs
        self.active: list[int] = []
        self.errors: dict[int, PrunebenchError] = {}
        self._rng: dict[int, dict[str, Any]] = {}
        speed = runs[0].ctx.speed
        self.speed = speed
        self.info = splits.info
        # Keep the training images on the device for the whole run (a no-op on the CPU).
        self.x, self.y = splits.train_x.to(speed.device), splits.train_y.to(speed.device)
        # The architecture without weights: functional_call runs it with each model's tensors.
        self.skeleton = copy.deepcopy(runs[0].ctx.model).to("meta")
        if speed.bf16:
            _bf16_as_autocast(self.skeleton)
        self.param_names = [n for n, _ in self.skeleton.named_parameters()]
        self.buffer_names = [n for n, _ in self.skeleton.named_buffers()]

        def one(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], xb: torch.Tensor,
                yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            with speed.autocast():
                logits = functional_call(self.skeleton, (params, buffers), (xb,))
            return F.cross_entropy(logits.float(), yb), logits

        self.forward = vmap(one)

    @contextmanager
    def rng(self, i: int) -> Iterator[None]:
        """Run member i's own code with member i's global-RNG stream (saved on the way out)."""
        if i in self._rng:
            set_rng_state(self._rng[i])
        try:
            yield
        finally:
            self._rng[i] = rng_state()

    def run_epoch(self, ids: list[int]) -> None:
        """One epoch of members `ids` (all at the same epoch), stepped together."""
        ctxs = {i: self.runs[i].ctx for i in ids}
        threads = adapt_threads()  # under a thread policy: re-check the free cores (train/threads.py)
        tallies: dict[int, EpochTally] = {}
        for i in ids:
            with self.rng(i):
                tallies[i] = begin_epoch(ctxs[i])
            ctxs[i].model.train()
        self.skeleton.train()
        streams = [
            batches(self.x, self.y, info=self.info, batch_size=ctxs[i].recipe.batch_size, train=True,
                    generator=epoch_generator(ctxs[i].seed, ctxs[i].epoch), device=self.speed.device,
                    channels_last=self.speed.channels_last)
            for i in ids
        ]  # fmt: skip
        alive = list(range(len(ids)))  # positions in `ids` still training this epoch
        for step in zip(*streams):
            alive = self._step([ids[p] for p in alive], [step[p] for p in alive], ctxs, tallies, alive)
            if not alive:
                return
        for p in alive:
            i = ids[p]
            with self.rng(i):
                record_train_metrics(ctxs[i], tallies[i])
                end_epoch(ctxs[i], threads)

    def _step(self, ids: list[int], data: list[tuple[torch.Tensor, torch.Tensor]], ctxs: dict[int, Any],
              tallies: dict[int, EpochTally], alive: list[int]) -> list[int]:
        models = [ctxs[i].model for i in ids]
        named = [dict(m.named_parameters()) for m in models]
        bufs = [dict(m.named_buffers()) for m in models]
        # Stacked under autograd: backward through the stack lands in each model's own .grad.
        params = {n: torch.stack([p[n] for p in named]) for n in self.param_names}
        buffers = {n: torch.stack([b[n] for b in bufs]) for n in self.buffer_names}
        xs = torch.stack([xb for xb, _ in data])
        ys = torch.stack([yb for _, yb in data])
        with warnings.catch_warnings():  # a layer without a vmap rule (as_strided_) is looped over: slow, not wrong
            warnings.filterwarnings("ignore", message="There is a performance drop")
            losses, logits = self.forward(params, buffers, xs, ys)
        with torch.no_grad():  # BatchNorm updated the stacked buffers in place: give each model its own
            for n in self.buffer_names:
                for k, b in enumerate(bufs):
                    b[n].copy_(buffers[n][k])
        keep: list[int] = []
        for k, (i, value) in enumerate(zip(ids, losses.tolist())):
            try:
                with self.rng(i):
                    check_loss(ctxs[i], value)
                keep.append(k)
            except PrunebenchError as e:  # this member fails as it would alone; the others go on
                self.errors[i] = e
                self.active.remove(i)
                self.runs[i].close()
        for k in keep:
            ctxs[ids[k]].optimizer.zero_grad(set_to_none=True)
        if keep:
            losses[keep].sum().backward()
        for k in keep:
            i = ids[k]
            with self.rng(i):
                take_step(ctxs[i], tallies[i], logits[k], ys[k], len(ys[k]))
        return [alive[k] for k in keep]
