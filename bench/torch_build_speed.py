"""CPU training speed of one zoo net under the running interpreter's torch build.

Run it once per build, alternating, on the same machine (the torch-pin decision, README):

    for i in 1 2 3; do .venv/bin/python bench/torch_build_speed.py; /tmp/v214/bin/python bench/torch_build_speed.py; done

Each run prints torch's version, images/s of plain SGD training steps (forward, backward, step) of
the demo's net (VGG-11 at 1/4 width, Fashion-MNIST shape, batch 128) and of ResNet-20 (CIFAR shape),
and the load average, so that a noisy neighbour shows.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from prunebench.data import dataset_info
from prunebench.models import build_model, variant


def images_per_s(arch: str, dataset: str, width: float, batch: int, steps: int) -> float:
    info = dataset_info(dataset)
    model = build_model(variant(arch, info, width_mult=width))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, info.in_channels, info.input_size, info.input_size, generator=g)
    y = torch.randint(0, info.num_classes, (batch,), generator=g)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    for _ in range(3):  # warm-up
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="two steps of a small batch: checks the script runs")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    batch, steps = (8, 2) if args.smoke else (128, args.steps)
    print("| torch | net | img/s | threads | load average |\n|---|---|---|---|---|")
    for arch, ds, width in (("vgg11", "fashion-mnist", 0.25), ("resnet20", "cifar10", 1.0)):
        ips = images_per_s(arch, ds, width, batch, steps)
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"| {torch.__version__} | {arch} | {ips:.1f} | {args.threads} | {load} |", flush=True)


if __name__ == "__main__":
    main()
