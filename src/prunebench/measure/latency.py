"""Measured forward latency with `torch.utils.benchmark`: median and spread, noise flagged.

A single number from a few `perf_counter` calls says little on a shared machine (another
process's burst can multiply it a thousandfold), so the timer runs blocks of forward passes
until the interquartile range is under `NOISY_IQR` of the median or the time budget is spent;
the result carries the IQR and says when the spread stayed too wide to trust the median.

Masked (unstructured) models run as the dense network here: their latency is the dense one,
and no speed-up may be read from their zeros (`Latency.dense`, set by the caller that knows).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# A CUDA build of torch on a machine without a GPU logs "No CUDA runtime is found" when
# torch.utils.benchmark loads cpp_extension: noise on every command's stderr, not an error.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
from torch.utils.benchmark import Timer  # noqa: E402

from prunebench.errors import ConfigError
from prunebench.measure.forward import Shape, device_of, dummy_batch, eval_mode, input_shape_of

#: IQR / median above which a measurement is flagged as noisy (the timer also stops below it).
NOISY_IQR = 0.1


@dataclass(frozen=True)
class Latency:
    """Forward time of one batch of `batch_size` images (not per image), over `blocks` timed blocks."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    iqr_ms: float  # interquartile range of the per-block times
    blocks: int
    noisy: bool  # IQR > NOISY_IQR x median even after the time budget: do not compare it
    batch_size: int
    device: str
    threads: int

    def cell(self) -> str:
        """`1.234 ± 0.012 ms (IQR)`, with `noisy` when flagged."""
        return f"{self.median_ms:.3f} ± {self.iqr_ms:.3f} ms (IQR)" + (" noisy" if self.noisy else "")

    def to_dict(self) -> dict[str, float | int | bool | str]:
        return {"median_ms": self.median_ms, "iqr_ms": self.iqr_ms, "p10_ms": self.p10_ms, "p90_ms": self.p90_ms,
                "blocks": self.blocks, "noisy": self.noisy, "threads": self.threads, "batch_size": self.batch_size}  # fmt: skip


def measure_latency(
    model: nn.Module,
    *,
    batch_size: int = 1,
    repeats: int = 20,
    warmup: int = 5,
    device: str = "cpu",
    input_shape: Shape | None = None,
    max_run_time: float = 1.0,
) -> Latency:
    """Time forward passes in eval and inference mode after `warmup` untimed ones.

    `torch.utils.benchmark.Timer.adaptive_autorange` picks the block size and stops once the
    spread is small (or after `max_run_time` seconds); at least `repeats` blocks are timed.
    The model is copied (not moved) when it lives on another device.
    """
    if batch_size < 1 or repeats < 1 or warmup < 0 or max_run_time <= 0:
        raise ConfigError("latency needs batch_size >= 1, repeats >= 1, warmup >= 0 and a positive time budget")
    shape = input_shape_of(model, input_shape)
    target = torch.device(device)
    if device_of(model) != target:
        model = copy.deepcopy(model).to(target)
    x = dummy_batch(model, shape, batch_size)
    threads = torch.get_num_threads()

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    with eval_mode(model):
        for _ in range(warmup):
            forward()
        # Timer synchronises CUDA itself; num_threads: the timer's default (1) would not be this process's
        timer = Timer(stmt="forward()", globals={"forward": forward}, num_threads=threads)
        m = timer.adaptive_autorange(threshold=NOISY_IQR, max_run_time=max_run_time)
        times = [t * 1000.0 for t in m.times]
        while len(times) < repeats:
            times.append(timer.timeit(m.number_per_run).median * 1000.0)
    p10, q1, median, q3, p90 = (float(v) for v in np.percentile(times, [10, 25, 50, 75, 90]))
    iqr = q3 - q1
    return Latency(median, p10, p90, iqr, len(times), iqr > NOISY_IQR * median, batch_size, str(target), threads)
