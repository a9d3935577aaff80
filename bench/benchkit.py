"""What the benchmark scripts share: synthetic CIFAR-shaped data, a step clock, the machine line.

The scripts put `bench/` first on `sys.path` when run as `python bench/<script>.py`,
so `from benchkit import ...` finds this file.
"""

from __future__ import annotations

import os
import platform
import time
from datetime import datetime, timezone

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
