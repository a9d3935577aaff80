"""Images/s of the ImageNet-layout loader alone, and of loader + ResNet-50 training steps.

    python bench/imagenet_loader.py --data-dir DIR [--input-size 224] [--workers 8] [--device cuda]

Without --data-dir it writes a synthetic folder of real JPEGs first (--image-size px, --classes x
--per-class images) under a temporary directory. Decoding, cropping and flipping run in the workers
(`data/imagefolder.py`); `PRUNEBENCH_DECODE=cuda` moves JPEG decoding to the GPU. The goal on one
modern GPU: >= 2,500 img/s decoded and augmented, so a ResNet-50 step is never starved.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=50)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--train-steps", type=int, default=5, help="ResNet-50 steps to time (0 = loader only)")
    args = ap.parse_args()
    os.environ["PRUNEBENCH_LOADER_WORKERS"] = str(args.workers)

    from prunebench.data import batches, load
    from prunebench.models import build_model, variant

    tmp = None
    root = args.data_dir
    if root is None:
        from imagefolder_toy import write_toy_imagenet

        tmp = tempfile.TemporaryDirectory()
        root = str(write_toy_imagenet(Path(tmp.name), classes=args.classes, train=args.per_class, val=2,
                                      size=args.image_size))
    s = load("imagenet", data_dir=root, val_size=0, input_size=args.input_size)
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    t, n = time.perf_counter(), 0
    for xb, _ in batches(s.train_x, s.train_y, info=s.info, batch_size=args.batch_size, train=True, generator=g, device=dev):
        n += len(xb)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    loader = n / (time.perf_counter() - t)
    print(f"loader alone: {loader:8.1f} img/s  ({n} images {args.input_size}px, {args.workers} workers, {dev}, "
          f"torch {torch.__version__}, load {os.getloadavg()[0]:.2f})")
    if not args.train_steps:
        return
    model = build_model(variant("resnet50", s.info)).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    t, n = time.perf_counter(), 0
    for step, (xb, yb) in enumerate(batches(s.train_x, s.train_y, info=s.info, batch_size=args.batch_size, train=True,
                                            generator=g, device=dev)):
        if step == args.train_steps:
            break
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
        n += len(xb)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    print(f"loader + ResNet-50 training: {n / (time.perf_counter() - t):8.1f} img/s ({n} images)")


if __name__ == "__main__":
    main()
