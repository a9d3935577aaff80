"""Latency: ordered percentiles, stated batch size and threads, model state untouched."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.measure import measure_latency


def test_latency_fields_and_state() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    net.spec = SimpleNamespace(in_channels=1, input_size=8)
    net.train()
    lat = measure_latency(net, batch_size=2, repeats=5, warmup=1)
    assert 0 < lat.p10_ms <= lat.median_ms <= lat.p90_ms
    assert (lat.batch_size, lat.device, lat.threads) == (2, "cpu", torch.get_num_threads())
    assert net.training and int(net[1].num_batches_tracked) == 0


def test_latency_rejects_bad_counts() -> None:
    with pytest.raises(ConfigError):
        measure_latency(nn.ReLU(), repeats=0, input_shape=(1, 2, 2))
