"""`train()`: the one training loop every arm of every experiment goes through."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from prunebench.data import Images, Splits, batches
from prunebench.errors import PrunebenchError
from prunebench.train import distributed
from prunebench.train.callbacks import Callback, MaskCallback, TrainContext
from prunebench.train.checkpoint import Masks, load_into, read_checkpoint, recover_dir, save_model
from prunebench.train.evaluation import evaluate_loss_acc
from prunebench.train.loggers import EpochLineCallback, TensorBoardCallback, wants_epoch_lines
from prunebench.train.monitors import (
    BEST_DIR,
    CheckpointCallback,
    EvaluationCallback,
    MetricsLogCallback,
    ProgressCallback,
)
from prunebench.train.recipe import Recipe
from prunebench.train.result import RESULT_FILE, TrainResult
from prunebench.train.seeding import epoch_generator, seed_everything
from prunebench.train.speed import SpeedSettings, resolve_speed
from prunebench.train.threads import adapt_threads
from prunebench.train.state import STATE_DIR, check_same_run, restore_state, run_identity

FINAL_DIR = "final"


def train(
    model: nn.Module,
    splits: Splits,
    recipe: Recipe,
    out_dir: str | Path,
    *,
    seed: int,
    callbacks: Sequence[Callback] = (),
    masks: Masks | None = None,
    device: str | torch.device | None = None,
    progress: bool | None = None,
    eval_test: bool = True,
    test_every_epoch: bool = False,
    tensorboard: bool = True,
) -> TrainResult:
    """Train `model` (a zoo model, built by the caller after `seed_everything(seed)`) in place.

    Resumes from `out_dir/state/` when present; when `out_dir/result.json` exists the run
    is finished: its final weights are loaded into `model` and the stored result returned.
    `masks` (parameter name -> bool) are applied at the start and kept exactly zero.
    `progress=None` shows a bar only on a terminal, and one line per epoch on stderr elsewhere.
    `tensorboard` writes per-epoch loss, accuracy and LR scalars into `out_dir`.
    """
    out_dir = Path(out_dir)
    speed = resolve_speed(recipe, distributed.rank_device(device))  # under torchrun: this rank's GPU
    run = prepare_run(model, splits, recipe, out_dir, seed=seed, callbacks=callbacks, masks=masks, speed=speed,
                      progress=progress, test_every_epoch=test_every_epoch, tensorboard=tensorboard)
    ctx = run.ctx
    if (out_dir / RESULT_FILE).exists():
        return finished_result(ctx)
    ctx.out_dir = distributed.write_dir(out_dir)  # data-parallel: only rank 0 writes the run folder
    open_run(ctx, out_dir)
    # torch.compile of a module returns an OptimizedModule (its stub only says callable)
    forward = cast(nn.Module, torch.compile(model)) if speed.compile else model
    forward = distributed.wrap(forward, speed.device)  # under torchrun: gradients all-reduced (DDP)
    # Keep the training images on the device for the whole run (a no-op on the CPU).
    train_x, train_y = splits.train_x.to(speed.device), splits.train_y.to(speed.device)
    try:
        for cb in ctx.callbacks:
            cb.on_train_start(ctx)
        while ctx.epoch < recipe.epochs:
            threads = adapt_threads()  # under a thread policy: re-check the free cores (train/threads.py)
            _run_epoch(ctx, forward, train_x, train_y)
            end_epoch(ctx, threads)
        for cb in ctx.callbacks:
            cb.on_train_end(ctx)
    finally:
        run.close()
    return finish_run(ctx, eval_test)


@dataclass
class Run:
    """One run's context plus the resources its callbacks hold (closed however the run ends)."""

    ctx: TrainContext
    progress: ProgressCallback
    tensorboard: TensorBoardCallback | None

    def close(self) -> None:
        self.progress.close()
        if self.tensorboard:
            self.tensorboard.close()


def prepare_run(
    model: nn.Module,
    splits: Splits,
    recipe: Recipe,
    out_dir: Path,
    *,
    seed: int,
    callbacks: Sequence[Callback],
    masks: Masks | None,
    speed: SpeedSettings,
    progress: bool | None,
    test_every_epoch: bool,
    tensorboard: bool,
) -> Run:
    """Move `model` to the device and give it its optimizer, its callbacks (the trainer's own after
    the caller's) and its context; nothing is read or written yet."""
    model.to(speed.device)
    if speed.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=recipe.lr_at(0), momentum=recipe.momentum,
        nesterov=recipe.nesterov, weight_decay=recipe.weight_decay,
    )
    progress_cb = ProgressCallback(progress)
    tb_cb = TensorBoardCallback() if tensorboard else None
    all_callbacks: list[Callback] = [
        *callbacks,
        *([MaskCallback(masks)] if masks else []),
        EvaluationCallback(test_every_epoch),
        MetricsLogCallback(test_every_epoch),
        CheckpointCallback(),
        progress_cb,
        *([tb_cb] if tb_cb else []),
        *([EpochLineCallback()] if wants_epoch_lines(progress) else []),
    ]
    ctx = TrainContext(
        model=model, optimizer=optimizer, recipe=recipe, out_dir=out_dir, splits=splits, seed=seed,
        speed=speed, masks=masks or None, callbacks=all_callbacks,
        steps_per_epoch=math.ceil(len(splits.train_y) / recipe.batch_size),
    )
    return Run(ctx, progress_cb, tb_cb)


def open_run(ctx: TrainContext, out_dir: Path) -> None:
    """Seed the global RNGs as a fresh run does, then resume from `out_dir/state/` when it exists."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(ctx.seed)
    if recover_dir(out_dir / STATE_DIR).exists():
        restore_state(ctx, out_dir / STATE_DIR)  # also restores the RNG states


def finished_result(ctx: TrainContext) -> TrainResult:
    """A finished run: check it is this run, give the caller its final weights, return its result."""
    result = TrainResult.load(ctx.out_dir)
    ckpt = read_checkpoint(ctx.out_dir / FINAL_DIR, expected_spec=getattr(ctx.model, "spec", None))
    check_same_run(ckpt.path, ckpt.meta or {}, ckpt.masks, ctx)
    load_into(ctx.model, ckpt)
    return result


@dataclass
class EpochTally:
    """The running sums behind an epoch's train loss and accuracy."""

    loss_sum: float = 0.0
    seen: int = 0
    correct: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.int64))


def begin_epoch(ctx: TrainContext) -> EpochTally:
    """Set epoch `ctx.epoch`'s learning rate and start its metrics row."""
    lr = ctx.recipe.lr_at(ctx.epoch)
    for group in ctx.optimizer.param_groups:
        group["lr"] = lr
    ctx.metrics = {"epoch": ctx.epoch, "lr": lr}
    return EpochTally(correct=torch.zeros((), dtype=torch.int64, device=ctx.speed.device))


def check_loss(ctx: TrainContext, loss: float) -> None:
    """Record the step's loss; a non-finite one ends the run with the last good checkpoint named."""
    ctx.loss = loss
    if not math.isfinite(ctx.loss):
        raise PrunebenchError(
            f"loss became {ctx.loss} at epoch {ctx.epoch} step {ctx.step}; " + _last_good(ctx)
        )


def take_step(ctx: TrainContext, tally: EpochTally, logits: torch.Tensor, yb: torch.Tensor, batch_n: int,
              weight: float = 1.0) -> None:
    """After backward: the callbacks' gradient edits, the optimizer step, the counters, the tally."""
    for cb in ctx.callbacks:
        cb.before_step(ctx)
    ctx.optimizer.step()
    ctx.step += 1
    ctx.images_seen += batch_n
    if weight:
        tally.loss_sum += ctx.loss * len(yb)
        tally.seen += len(yb)
        tally.correct += (logits.argmax(1) == yb).sum()
    for cb in ctx.callbacks:
        cb.after_step(ctx)


def end_epoch(ctx: TrainContext, threads: int | None) -> None:
    """The epoch's end: its callbacks (evaluation, metrics, checkpoint, ...), then the next epoch."""
    if threads is not None:
        ctx.metrics["threads"] = threads
    for cb in ctx.callbacks:
        cb.on_epoch_end(ctx)
    ctx.epoch += 1


def _run_epoch(ctx: TrainContext, forward: nn.Module, x: Images, y: torch.Tensor) -> None:
    recipe, speed = ctx.recipe, ctx.speed
    tally = begin_epoch(ctx)
    forward.train()
    rank = distributed.active()
    for xb, yb in batches(x, y, info=ctx.splits.info, batch_size=recipe.batch_size, train=True,
                          generator=epoch_generator(ctx.seed, ctx.epoch), device=speed.device,
                          channels_last=speed.channels_last):
        weight, batch_n = 1.0, len(yb)
        if rank is not None:  # this rank's slice of the global batch (train/distributed.py)
            xb, yb, weight = rank.shard(xb, yb)
        with speed.autocast():
            logits = forward(xb)
        loss = F.cross_entropy(logits.float(), yb)
        check_loss(ctx, loss.item())
        ctx.optimizer.zero_grad(set_to_none=True)
        (loss * weight if rank is not None else loss).backward()
        take_step(ctx, tally, logits, yb, batch_n, weight)
    if rank is not None:  # the epoch's numbers over the whole global batch
        loss_sum, seen_f, correct_f = rank.sum(tally.loss_sum, tally.seen, float(tally.correct.item()))
        tally.loss_sum, tally.seen, tally.correct = loss_sum, int(seen_f), torch.tensor(int(correct_f))
    record_train_metrics(ctx, tally)


def record_train_metrics(ctx: TrainContext, tally: EpochTally) -> None:
    ctx.metrics["train_loss"] = tally.loss_sum / max(tally.seen, 1)
    ctx.metrics["train_acc"] = tally.correct.item() / max(tally.seen, 1)


def _last_good(ctx: TrainContext) -> str:
    state = ctx.out_dir / STATE_DIR
    if state.exists():
        return f"last good checkpoint kept in {state}"
    return "no checkpoint had been written yet"


def _test_acc(model: nn.Module, ctx: TrainContext) -> float | None:
    s = ctx.splits
    if not len(s.test_y):
        return None
    return evaluate_loss_acc(model, s.test_x, s.test_y, info=s.info, speed=ctx.speed)[1]


def finish_run(ctx: TrainContext, eval_test: bool) -> TrainResult:
    """Write `final/` (and `best/` without a validation split), test once, then `result.json` last."""
    out, model = ctx.out_dir, ctx.model
    start = time.perf_counter()
    meta = {"epoch": ctx.recipe.epochs - 1, **run_identity(ctx)}
    save_model(out / FINAL_DIR, model, ctx.masks, meta=meta)
    has_val = ctx.best_val_acc is not None
    if not has_val:
        save_model(out / BEST_DIR, model, ctx.masks, meta=meta)
    test_acc = test_acc_best = None
    if eval_test:
        test_acc = test_acc_best = _test_acc(model, ctx)
        if has_val and ctx.best_epoch != ctx.recipe.epochs - 1:
            best = copy.deepcopy(model)
            load_into(best, read_checkpoint(out / BEST_DIR))
            test_acc_best = _test_acc(best, ctx)
    compat = [h["test_acc"] for h in ctx.history if "test_acc" in h]
    last = ctx.history[-1] if ctx.history else {}
    result = TrainResult(
        final_val_acc=last.get("val_acc"),
        best_val_acc=ctx.best_val_acc,
        best_epoch=ctx.best_epoch if has_val else ctx.recipe.epochs - 1,
        test_acc=test_acc,
        test_acc_best_val=test_acc_best,
        best_test_acc_compat=max(compat) if compat else None,
        epochs=ctx.recipe.epochs,
        steps=ctx.step,
        images_seen=ctx.images_seen,
        wall_time_s=ctx.elapsed_s + time.perf_counter() - start,
        precision=ctx.speed.precision,
        device=str(ctx.device),
        history=ctx.history,
    )
    result.save(out)
    return result
