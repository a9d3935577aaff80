"""Loggers people already read: TensorBoard scalars in the run folder, and one plain line per
epoch when nobody sees the progress bar (nohup, batch jobs, CI: tqdm hides itself off a terminal)."""

from __future__ import annotations

import sys
import warnings
from typing import Any, TextIO

from prunebench.train.callbacks import Callback, TrainContext

#: TensorBoard tag of each per-epoch metric (grouped into loss / accuracy / optimizer panels).
TB_TAGS = {
    "train_loss": "loss/train", "val_loss": "loss/val",
    "train_acc": "accuracy/train", "val_acc": "accuracy/val", "test_acc": "accuracy/test",
    "lr": "optimizer/lr",
}  # fmt: skip


class TensorBoardCallback(Callback):
    """Per-epoch loss, accuracy and LR as TensorBoard scalars, event files written into the run
    folder itself, so `tensorboard --logdir <experiment>` lists every stage as a run.

    A resumed run purges the events of the epochs it redoes. Without the `tensorboard` package
    it warns once and logs nothing (training never depends on it).
    """

    def __init__(self) -> None:
        self.writer: Any = None

    def on_train_start(self, ctx: TrainContext) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # pragma: no cover - tensorboard is a dependency; a broken install only warns
            warnings.warn("tensorboard is not installed: no TensorBoard scalars are written", stacklevel=2)
            return
        self.writer = SummaryWriter(log_dir=str(ctx.out_dir), purge_step=ctx.epoch or None, flush_secs=30)

    def on_epoch_end(self, ctx: TrainContext) -> None:
        if self.writer is None:
            return
        for key, tag in TB_TAGS.items():
            value = ctx.metrics.get(key)
            if isinstance(value, int | float):
                self.writer.add_scalar(tag, float(value), ctx.epoch)
        self.writer.flush()  # one small write per epoch: a crash loses nothing already shown

    def on_train_end(self, ctx: TrainContext) -> None:
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def epoch_line(ctx: TrainContext) -> str:
    """`[run] epoch 3/10  lr 0.1  loss 0.512  acc 81.20%  val 80.00%  12.3 s`."""
    m = ctx.metrics
    parts = [f"[{ctx.out_dir.name}] epoch {ctx.epoch + 1}/{ctx.recipe.epochs}", f"lr {m['lr']:.4g}"]
    if "train_loss" in m:
        parts += [f"loss {m['train_loss']:.4f}", f"acc {100 * m['train_acc']:.2f}%"]
    for key, label in (("val_acc", "val"), ("test_acc", "test")):
        if key in m:
            parts.append(f"{label} {100 * m[key]:.2f}%")
    if "seconds" in m:
        parts.append(f"{m['seconds']:.1f} s")
    return "  ".join(parts)


class EpochLineCallback(Callback):
    """One line per epoch on `stream` (stderr by default). Runs after the metrics logger, so the
    epoch's time is known."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def on_epoch_end(self, ctx: TrainContext) -> None:
        stream = self.stream or sys.stderr
        print(epoch_line(ctx), file=stream, flush=True)


def wants_epoch_lines(progress: bool | None, stream: TextIO | None = None) -> bool:
    """`progress=None` (the default) and no terminal to draw a bar on: print lines instead."""
    if progress is not None:
        return False
    stream = stream or sys.stderr
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream: no bar either
        return True
