"""Mini-batches with on-device augmentation: pad-crop, flip and normalisation as tensor ops."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from prunebench.data.imagefolder import FolderImages
from prunebench.data.splits import Images
from prunebench.data.info import DatasetInfo


def _crop_flip(x: torch.Tensor, pad: int, flip: bool, generator: torch.Generator | None) -> torch.Tensor:
    """Per-image random crop of the zero-padded batch (and mirror), in one gather.

    Random numbers are drawn on the CPU generator and then moved, so the result is
    identical on every device.
    """
    b, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    rows = dy[:, None] + torch.arange(h)  # b×h source rows in the padded image
    cols = dx[:, None] + torch.arange(w)
    if flip:
        mirrored = torch.rand(b, generator=generator) < 0.5
        cols = torch.where(mirrored[:, None], cols.flip(1), cols)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows, cols = rows.to(x.device), cols.to(x.device)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def batches(
    x: Images,
    y: torch.Tensor,
    *,
    info: DatasetInfo,
    batch_size: int,
    train: bool,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield `(normalised float32 images, labels)` on `device`; the last partial batch is kept.

    With `train=True` the order is shuffled and each image is randomly cropped
    (zero padding `info.pad`) and mirrored (if `info.flip`), all driven only by
    `generator` (a CPU `torch.Generator`; None = torch's global RNG).

    `FolderImages` (images on disk) are decoded and cropped in worker processes instead, with
    the transforms of `data/imagefolder.py`; a file that does not decode is left out of its batch.
    """
    device = torch.device(device)
    mean = torch.tensor(info.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, device=device).view(1, -1, 1, 1)
    n = len(y)
    order = torch.randperm(n, generator=generator) if train else torch.arange(n)

    def finish(xb: torch.Tensor) -> torch.Tensor:
        xb = (xb.float().div_(255.0) - mean).div_(std)  # padded zeros become -mean/std, as in the reference
        return xb.contiguous(memory_format=torch.channels_last) if channels_last else xb

    if isinstance(x, FolderImages):
        for xb, idx in x.stream(order, batch_size=batch_size, train=train, generator=generator, device=device):
            yield finish(xb), y[idx].to(device, non_blocking=True)
        return
    order = order.to(x.device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        xb = x[idx].to(device, non_blocking=True)
        if train and (info.pad or info.flip):
            xb = _crop_flip(xb, info.pad, info.flip, generator)
        yield finish(xb), y[idx].to(device, non_blocking=True)
