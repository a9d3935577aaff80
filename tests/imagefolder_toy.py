"""A tiny ImageNet-layout folder of real JPEG files, written by the tests (torchvision encodes them)."""

from __future__ import annotations

from pathlib import Path

import torch


def write_toy_imagenet(root: Path, *, classes: int = 4, train: int = 12, val: int = 3, size: int = 64) -> Path:
    """`root/train/<wnid>/*.JPEG` and `root/val/<wnid>/*.JPEG`: each class a colour and a stripe
    direction plus noise, so a small net can tell them apart; some images are not square."""
    from torchvision.io import encode_jpeg

    g = torch.Generator().manual_seed(0)
    for split, n in (("train", train), ("val", val)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                h, w = (size, size + 16) if i % 3 == 0 else (size, size)
                colour = torch.tensor([(c * 70) % 256, (c * 150 + 60) % 256, (255 - c * 50) % 256]).view(3, 1, 1)
                stripes = (torch.arange(w if c % 2 else h) // 8 % 2 * 80).view(1, 1, -1) if c % 2 else \
                    (torch.arange(h) // 8 % 2 * 80).view(1, -1, 1)
                img = colour + stripes + torch.randint(0, 40, (3, h, w), generator=g)
                data = encode_jpeg(img.clamp(0, 255).to(torch.uint8).expand(3, h, w).contiguous(), quality=90)
                (folder / f"n{c:08d}_{i}.JPEG").write_bytes(data.numpy().tobytes())
    return root
