"""Latency: torch.utils.benchmark blocks, ordered percentiles and IQR, noise flagged, model state untouched."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.measure import measure_latency
from prunebench.measure.latency import NOISY_IQR


def test_latency_fields_and_state() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    net.spec = SimpleNamespace(in_channels=1, input_size=8)
    net.train()
    lat = measure_latency(net, batch_size=2, repeats=5, warmup=1, max_run_time=0.2)
    assert 0 < lat.p10_ms <= lat.median_ms <= lat.p90_ms and lat.iqr_ms >= 0
    assert lat.blocks >= 5 and lat.noisy == (lat.iqr_ms > NOISY_IQR * lat.median_ms)
    assert (lat.batch_size, lat.device, lat.threads) == (2, "cpu", torch.get_num_threads())
    assert net.training and int(net[1].num_batches_tracked) == 0
    assert lat.to_dict()["iqr_ms"] == lat.iqr_ms and "ms (IQR)" in lat.cell()


class _Bursty(nn.Module):
    """A forward that sometimes stalls, as a model does on a machine other jobs load."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Every call takes over 50 ms, so the timer times one call per block (faster calls are packed
        # many to a block, where scattered stalls can average out: a flaky test); every second stalls.
        self.calls += 1
        time.sleep(0.15 if self.calls % 2 == 0 else 0.055)
        return x


def test_a_noisy_measurement_is_flagged() -> None:
    lat = measure_latency(_Bursty(), repeats=6, warmup=0, input_shape=(1, 2, 2), max_run_time=0.3)
    assert lat.noisy and lat.iqr_ms > NOISY_IQR * lat.median_ms
    assert "noisy" in lat.cell()


def test_latency_rejects_bad_counts() -> None:
    with pytest.raises(ConfigError):
        measure_latency(nn.ReLU(), repeats=0, input_shape=(1, 2, 2))
    with pytest.raises(ConfigError):
        measure_latency(nn.ReLU(), max_run_time=0, input_shape=(1, 2, 2))
