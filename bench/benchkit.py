"""What the benchmark scripts share: synthetic CIFAR-shaped data, a step clock, the machine line.

The scripts put `bench/` first on `sys.path` when run as `python bench/<script>.py`,
so `from benchkit import ...` finds this file.
"""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timezone

from typing import Any

import torch

from prunebench.data import Splits, dataset_info
from prunebench.train import Callback, TrainContext


def synthetic_cifar(n: int, test: int = 0, seed: int = 0) -> Splits:
    """`n` random uint8 CIFAR-10-shaped training images (throughput does not depend on the pixels)."""
    info = dataset_info("cifar10")
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n + test, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n + test,), generator=g)
    return Splits(info, x[:n], y[:n], x[:0], y[:0], x[n:], y[n:], source="synthetic", split_hash="synthetic")


class StepClock(Callback):
    """Timestamps the end of every optimizer step."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def after_step(self, ctx: TrainContext) -> None:
        if ctx.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter())


def load_average() -> str:
    """The 1/5/15-minute load averages and the cores this process may use, for the record."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {len(os.sched_getaffinity(0))} cores"


def machine_line() -> str:
    return (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}, {load_average()}")


def demo_large(epochs: int | None = None, *, overrides: tuple[str, ...] = (), val_size: int | None = None,
               train_subset: int | None = None) -> tuple[Splits, Any, Any]:
    """The demo's large-model run as the shipped `demo` preset defines it: (splits, model spec, recipe).

    `epochs` and `overrides` (`data.flip=true`, ...) edit the preset as `prunebench run --set` would, so
    the milestones follow the epochs; `val_size` / `train_subset` shrink the data for smoke runs."""
    import dataclasses

    from prunebench.data.loader import load
    from prunebench.experiment.preset import load_preset
    from prunebench.experiment.resolve import large_spec, recipe_of

    sets = [*overrides, *([f"recipes.large.epochs={epochs}"] if epochs is not None else [])]
    preset = load_preset("demo", sets)
    d = dataclasses.replace(preset.data, **({} if val_size is None else {"val_size": val_size}),
                            **({} if train_subset is None else {"train_subset": train_subset}))
    splits = load(d.name, val_size=d.val_size, train_subset=d.train_subset, split_seed=d.split_seed,
                  norm=d.normalisation, crop_pad=d.crop_pad, flip=d.flip)
    return splits, large_spec(preset), recipe_of(preset.large.to_dict())
