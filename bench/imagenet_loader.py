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
    ap.add_argument("--smoke", action="store_true", help="tiny sizes for CI: checks the script runs, numbers meaningless")
    args = ap.parse_args()
    if args.smoke:
        args.classes, args.per_class, args.image_size, args.input_size = 2, 4, 40, 32
        args.workers, args.batch_size, args.train_steps = 0, 4, 1
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
    print(f"{n} images at {args.input_size}px, {args.workers} loader workers, {dev}, torch {torch.__version__}, "
          f"load {os.getloadavg()[0]:.2f}")
    print("| what | img/s |\n|---|---|")
    print(f"| loader alone | {loader:.1f} |")
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
    print(f"| loader + ResNet-50 training ({n} images) | {n / (time.perf_counter() - t):.1f} |")


if __name__ == "__main__":
    main()
