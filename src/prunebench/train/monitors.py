"""The trainer's own callbacks: evaluation, metric logging, checkpointing, progress."""

from __future__ import annotations

import csv
import io
import time

from tqdm import tqdm

from prunebench.train.callbacks import Callback, TrainContext
from prunebench.train.checkpoint import atomic_write_text, save_model
from prunebench.train.evaluation import evaluate_loss_acc
from prunebench.train.state import save_state

METRICS_FILE = "metrics.csv"
BEST_DIR = "best"


class EvaluationCallback(Callback):
    """Validation loss/accuracy every epoch (when there is a validation split), and test
    accuracy every epoch only for the labelled best-on-test compatibility column."""

    def __init__(self, test_every_epoch: bool) -> None:
        self.test_every_epoch = test_every_epoch

    def on_epoch_end(self, ctx: TrainContext) -> None:
        s = ctx.splits
        if len(s.val_y):
            ctx.metrics["val_loss"], ctx.metrics["val_acc"] = evaluate_loss_acc(
                ctx.model, s.val_x, s.val_y, info=s.info, speed=ctx.speed)
        if self.test_every_epoch and len(s.test_y):
            ctx.metrics["test_acc"] = evaluate_loss_acc(ctx.model, s.test_x, s.test_y, info=s.info, speed=ctx.speed)[1]


class MetricsLogCallback(Callback):
    """Append the epoch's row to the history and rewrite `metrics.csv` from it (so a
    resumed run's CSV never holds rows of epochs that were redone)."""

    COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "seconds")

    def __init__(self, test_every_epoch: bool) -> None:
        self.columns = [c for c in self.COLUMNS if test_every_epoch or c != "test_acc"]
        self._epoch_start = time.perf_counter()

    def on_train_start(self, ctx: TrainContext) -> None:
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, ctx: TrainContext) -> None:
        now = time.perf_counter()
        ctx.metrics["seconds"] = now - self._epoch_start
        ctx.elapsed_s += now - self._epoch_start
        self._epoch_start = now
        ctx.history.append(dict(ctx.metrics))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(ctx.history)
        atomic_write_text(ctx.out_dir / METRICS_FILE, buf.getvalue())


class CheckpointCallback(Callback):
    """Track the best-on-validation model in `best/` and checkpoint the training state every epoch."""

    def on_epoch_end(self, ctx: TrainContext) -> None:
        val_acc = ctx.metrics.get("val_acc")
        if val_acc is not None and (ctx.best_val_acc is None or val_acc > ctx.best_val_acc):
            ctx.best_val_acc, ctx.best_epoch = val_acc, ctx.epoch
            save_model(ctx.out_dir / BEST_DIR, ctx.model, ctx.masks, meta={"epoch": ctx.epoch, "val_acc": val_acc})
        save_state(ctx)


class ProgressCallback(Callback):
    """One tqdm bar over the whole run (epoch, loss, accuracy, ETA); hidden unless stderr is a terminal
    (`enabled=None`), or forced on/off."""

    def __init__(self, enabled: bool | None) -> None:
        self.enabled = enabled
        self.bar: tqdm | None = None

    def on_train_start(self, ctx: TrainContext) -> None:
        total = ctx.recipe.epochs * ctx.steps_per_epoch
        self.bar = tqdm(total=total, initial=min(ctx.step, total), unit="step", leave=False,
                        disable=None if self.enabled is None else not self.enabled, dynamic_ncols=True)
        self._describe(ctx.epoch, ctx.recipe.epochs)

    def _describe(self, epoch: int, epochs: int) -> None:
        if self.bar is not None:
            self.bar.set_description(f"epoch {min(epoch + 1, epochs)}/{epochs}")

    def after_step(self, ctx: TrainContext) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if ctx.step % 10 == 0:
                self.bar.set_postfix(loss=f"{ctx.loss:.3f}", refresh=False)

    def on_epoch_end(self, ctx: TrainContext) -> None:
        if self.bar is not None:
            m = ctx.metrics
            post = {"loss": f"{m['train_loss']:.3f}", "acc": f"{m['train_acc']:.3f}"}
            if "val_acc" in m:
                post["val"] = f"{m['val_acc']:.3f}"
            self.bar.set_postfix(post, refresh=False)
            self._describe(ctx.epoch + 1, ctx.recipe.epochs)

    def on_train_end(self, ctx: TrainContext) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
