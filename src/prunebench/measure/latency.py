"""Measured forward latency: warm-up, inference mode, median of timed repeats."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.measure.forward import Shape, device_of, dummy_batch, eval_mode, input_shape_of


@dataclass(frozen=True)
class Latency:
    """Forward time of one batch of `batch_size` images (not per image)."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    batch_size: int
    device: str
    threads: int


def measure_latency(
    model: nn.Module,
    *,
    batch_size: int = 1,
    repeats: int = 20,
    warmup: int = 5,
    device: str = "cpu",
    input_shape: Shape | None = None,
) -> Latency:
    """Time `repeats` forward passes after `warmup` untimed ones, in eval and inference mode.

    The model is copied (not moved) when it lives on another device.
    """
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ConfigError("latency needs batch_size >= 1, repeats >= 1 and warmup >= 0")
    shape = input_shape_of(model, input_shape)
    target = torch.device(device)
    if device_of(model) != target:
        model = copy.deepcopy(model).to(target)
    x = dummy_batch(model, shape, batch_size)
    times: list[float] = []
    with eval_mode(model), torch.inference_mode():
        for i in range(warmup + repeats):
            _sync(target)
            start = time.perf_counter()
            model(x)
            _sync(target)
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1000.0)
    p10, median, p90 = np.percentile(times, [10, 50, 90])
    return Latency(float(median), float(p10), float(p90), batch_size, str(target), torch.get_num_threads())


def _sync(device: torch.device) -> None:
    """Wait for queued kernels, so that the timer measures them (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
