"""`batches`: shuffling, pad-crop, flip and normalisation as deterministic tensor ops."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from prunebench.data import DatasetInfo, batches, dataset_info

INFO = dataclasses.replace(dataset_info("cifar10"), pad=2, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))


def _images(n: int = 10, size: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    x = torch.randint(1, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)  # no zeros: padding is visible
    return x, torch.arange(n)


def _naive(x: torch.Tensor, info: DatasetInfo, generator: torch.Generator) -> torch.Tensor:
    """Per-image reference of the augmentation, drawing the same random numbers in the same order."""
    b, _, h, w = x.shape
    p = info.pad
    dy = torch.randint(0, 2 * p + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * p + 1, (b,), generator=generator)
    flip = torch.rand(b, generator=generator) < 0.5 if info.flip else torch.zeros(b, dtype=torch.bool)
    out = []
    for i in range(b):
        img = torch.nn.functional.pad(x[i], (p, p, p, p))[:, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        out.append(img.flip(2) if flip[i] else img)
    return torch.stack(out)


def _normalise(x: torch.Tensor, info: DatasetInfo) -> torch.Tensor:
    mean = torch.tensor(info.mean).view(1, -1, 1, 1)
    std = torch.tensor(info.std).view(1, -1, 1, 1)
    return (x.float() / 255 - mean) / std


@pytest.mark.parametrize("flip", [True, False])
def test_train_batches_match_per_image_reference(flip: bool) -> None:
    info = dataclasses.replace(INFO, flip=flip)
    x, y = _images()
    got = list(batches(x, y, info=info, batch_size=4, train=True, generator=torch.Generator().manual_seed(7)))

    g = torch.Generator().manual_seed(7)
    order = torch.randperm(len(y), generator=g)
    for (xb, yb), idx in zip(got, order.split(4)):
        assert torch.equal(yb, y[idx])
        assert torch.allclose(xb, _normalise(_naive(x[idx], info, g), info), atol=1e-6)


def test_crop_pads_with_zero_pixels_and_flip_happens() -> None:
    x, y = _images(n=64)
    xb, yb = next(batches(x, y, info=INFO, batch_size=64, train=True, generator=torch.Generator().manual_seed(0)))
    raw = torch.round((xb * torch.tensor(INFO.std).view(1, -1, 1, 1) + torch.tensor(INFO.mean).view(1, -1, 1, 1)) * 255)
    assert (raw == 0).any()  # some crops reach into the zero padding
    mirrored = [bool(torch.equal(raw[i].to(torch.uint8), x[yb[i]].flip(2))) for i in range(64)]
    assert any(mirrored)


def test_deterministic_given_generator_and_different_otherwise() -> None:
    x, y = _images(n=20)

    def epoch(seed: int) -> list[torch.Tensor]:
        return [xb for xb, _ in batches(x, y, info=INFO, batch_size=8, train=True, generator=torch.Generator().manual_seed(seed))]

    a, b, c = epoch(1), epoch(1), epoch(2)
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not all(torch.equal(p, q) for p, q in zip(a, c))


def test_eval_batches_keep_order_and_partial_batch() -> None:
    x, y = _images(n=10)
    got = list(batches(x, y, info=INFO, batch_size=4, train=False))
    assert [len(yb) for _, yb in got] == [4, 4, 2]
    assert torch.equal(torch.cat([yb for _, yb in got]), y)
    assert torch.allclose(torch.cat([xb for xb, _ in got]), _normalise(x, INFO), atol=1e-6)


def test_train_epoch_visits_every_image_once() -> None:
    x, y = _images(n=10)
    ys = torch.cat([yb for _, yb in batches(x, y, info=INFO, batch_size=3, train=True, generator=torch.Generator().manual_seed(5))])
    assert sorted(ys.tolist()) == list(range(10))


def test_no_pad_no_flip_only_shuffles_and_normalises() -> None:
    info = dataclasses.replace(INFO, pad=0, flip=False)
    x, y = _images(n=6)
    xb, yb = next(batches(x, y, info=info, batch_size=6, train=True, generator=torch.Generator().manual_seed(3)))
    assert torch.allclose(xb, _normalise(x[yb], info), atol=1e-6)


def test_channels_last_and_dtype() -> None:
    x, y = _images(n=4)
    xb, _ = next(batches(x, y, info=INFO, batch_size=4, train=True, channels_last=True))
    assert xb.dtype == torch.float32 and xb.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_result() -> None:
    x, y = _images(n=33)

    def epoch(device: str, data_device: str) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(11)
        return [xb.cpu() for xb, _ in batches(x.to(data_device), y.to(data_device), info=INFO, batch_size=8,
                                              train=True, generator=g, device=device)]

    cpu = epoch("cpu", "cpu")
    for data_device in ("cpu", "cuda"):  # data moved per batch, or already resident on the GPU
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(cpu, epoch("cuda", data_device)))
