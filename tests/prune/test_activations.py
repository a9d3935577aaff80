"""Activation sampling shared by ThiNet and the regression method."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench.data import load
from prunebench.prune.importance import floor_count
from prunebench.prune.activations import (
    as_channels,
    balanced_images,
    consumer_weight,
    contributions,
    sample_layer,
)


def _net(stride: int = 1) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 5, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(5, 7, 3, stride=stride, padding=1, bias=True),
        nn.ReLU(),
        nn.Flatten(),
        nn.LazyLinear(3),
    )


@pytest.mark.parametrize("stride", [1, 2])
def test_windows_reproduce_the_consumer_output(stride: int) -> None:
    net = _net(stride)
    images = torch.randn(6, 2, 9, 9)
    net(images)  # materialise the lazy Linear
    s = sample_layer(net, "2", images, locations=4, seed=3, points=[("y", "2", "out")], batch_size=4)
    conv = net[2]
    y = s.x.reshape(s.samples, -1) @ conv.weight.reshape(7, -1).T + conv.bias
    assert s.x.shape == (24, 5, 9)
    assert s.record() == {"images": 6, "locations": 4, "samples": 24}
    torch.testing.assert_close(y, s.points["y"], rtol=1e-4, atol=1e-5)


def test_linear_consumer_and_alignment_across_calls() -> None:
    net = _net()
    images = torch.randn(5, 2, 6, 6)
    net(images)
    lin = sample_layer(net, "5", images, locations=10, seed=0)
    assert lin.samples == 5 and lin.locations == 1
    assert as_channels(lin, 7).shape == (5, 7, 36)
    a = sample_layer(net, "2", images, locations=3, seed=11)
    b = sample_layer(net, "2", images, locations=3, seed=11, batch_size=2)
    c = sample_layer(net, "2", images, locations=3, seed=12)
    torch.testing.assert_close(a.x, b.x)  # positions depend on the seed only, not on batching
    assert not torch.equal(a.x, c.x)


def test_contributions_sum_to_the_sampled_filter_response() -> None:
    x = torch.randn(40, 6, 9)
    w = torch.randn(4, 6, 9)
    xhat = contributions(x, w, seed=1)
    d = torch.randint(4, (40,), generator=torch.Generator().manual_seed(1))
    full = torch.einsum("nk,nk->n", x.reshape(40, -1).double(), w.double()[d].reshape(40, -1))
    torch.testing.assert_close(xhat.sum(1), full)
    assert consumer_weight(nn.Linear(12, 3), 4).shape == (3, 4, 3)


def test_balanced_images_are_class_balanced_and_seeded() -> None:
    splits = load("fashion-mnist", val_size=0, train_subset=500)
    a = balanced_images(splits, 23, seed=0)
    assert a.shape == (23, 1, 28, 28) and a.dtype == torch.float32
    assert torch.equal(a, balanced_images(splits, 23, seed=0))
    assert not torch.equal(a, balanced_images(splits, 23, seed=1))


def test_keep_counts_are_exact_floors() -> None:
    assert floor_count(10, 0.7) == 7
    assert floor_count(64, 0.3) == 19
    assert floor_count(512, 0.7) == 358
    assert floor_count(3, 0.1) == 0
