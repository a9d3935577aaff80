"""prunebench's trainer against a re-creation of the authors' training loop: img/s, ratio, share of the conv peak.

The reference loop is what the paper's CIFAR code does: a `Dataset` whose `__getitem__`
pads, randomly crops, flips and normalises one image at a time, batched by a
`DataLoader` (one process, no workers), fp32, SGD with momentum and weight decay, and
a pass over the test set after every epoch.  prunebench's trainer runs the same model
on the same images at its default settings (`precision="auto"`: bf16 autocast +
channels_last where the CPU has native bf16) and, for reference, in fp32; it also tests
after every epoch (`test_every_epoch=True`) and writes its per-epoch checkpoint.

Each system trains `--epochs` epochs per run; img/s comes from the median time between
consecutive optimizer steps within an epoch (each interval includes getting that batch:
the per-sample pipeline of the reference, the on-device batch augmentation of prunebench),
which is robust to other jobs stealing the CPU now and then and leaves out per-epoch
costs that a short synthetic epoch would exaggerate; those are in the "whole epoch"
columns (last epoch: training + test pass + the trainer's metrics/checkpoint writes,
best round).  The systems alternate, in `--rounds` rounds, so they see the same load.
The convolution peak is measured here too: a big 3x3 conv (forward + both backward
products) in fp32 and in bf16 + channels_last; achieved GFLOP/s = img/s x 3 x the
model's forward multiply-adds x 2 (reference counter).  Data: random CIFAR-shaped images (the demo
net: its own data set's shape), so no download is needed.  Prints Markdown tables.

    .venv/bin/python bench/trainer_vs_reference.py [--threads 1] [--train 512] [--test 256]
        [--epochs 2] [--rounds 2] [--models demo,resnet20,resnet56,vgg16] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from benchkit import StepClock, load_average, machine_line, synthetic_cifar
from torch import nn
from torch.utils.data import DataLoader, Dataset

from prunebench.data import Splits, dataset_info
from prunebench.experiment import load_preset
from prunebench.measure import count_flops
from prunebench.models import variant
from prunebench.train import Callback, Recipe, TrainContext, seed_everything, train
from prunebench.train.speed import cpu_has_bf16

MODELS = ("demo", "resnet20", "resnet56", "vgg16")


@dataclass(frozen=True)
class Case:
    """One model to compare: its spec, data and the recipe fields both loops share."""

    label: str
    spec: object
    splits: Splits
    batch_size: int
    lr: float
    precision: str  # prunebench's default for this model ("auto", or the demo preset's choice)


def cases(names: list[str], n_train: int, n_test: int, batch: int | None) -> list[Case]:
    """The models to compare; `batch` overrides every model's batch size."""
    out = []
    for name in names:
        if name == "demo":  # read late: the demo preset is tuned by others
            preset = load_preset("demo")
            info = dataset_info(preset.data.name)
            r = preset.large
            splits = synthetic_like(info, max(n_train, 4 * (batch or r.batch_size)), n_test)  # >= 4 steps an epoch
            spec = variant(preset.model.variant, info, width_mult=preset.model.width_mult)
            label = f"demo ({preset.model.variant} x{preset.model.width_mult:g}, {info.name} shape)"
            out.append(Case(label, spec, splits, batch or r.batch_size, r.lr, r.precision))
        else:
            splits = synthetic_cifar(n_train, n_test)
            out.append(Case(name, variant(name, splits.info), splits, batch or 64, 0.1, "auto"))
    return out


def synthetic_like(info: object, n_train: int, n_test: int) -> Splits:
    """Random uint8 images of `info`'s shape (the demo data set's)."""
    c, s = info.in_channels, info.input_size  # type: ignore[attr-defined]
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n_train + n_test, c, s, s), dtype=torch.uint8, generator=g)
    y = torch.randint(0, info.num_classes, (n_train + n_test,), generator=g)  # type: ignore[attr-defined]
    return Splits(info, x[:n_train], y[:n_train], x[:0], y[:0], x[n_train:], y[n_train:],  # type: ignore[arg-type]
                  source="synthetic", split_hash="synthetic")  # fmt: skip


# -- the reference loop -------------------------------------------------------------------


class PerSampleDataset(Dataset):
    """The authors' input pipeline, one image per call: pad + random crop, random flip, to float, normalise."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, info: object, train: bool) -> None:
        self.x, self.y, self.train = x, y, train
        self.pad, self.flip = info.pad, info.flip  # type: ignore[attr-defined]
        self.mean = torch.tensor(info.mean).view(-1, 1, 1)  # type: ignore[attr-defined]
        self.std = torch.tensor(info.std).view(-1, 1, 1)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.x[i]
        if self.train:
            if self.pad:
                h, w = img.shape[-2:]
                padded = F.pad(img, (self.pad,) * 4)
                dy, dx = torch.randint(0, 2 * self.pad + 1, (2,)).tolist()
                img = padded[:, dy : dy + h, dx : dx + w]
            if self.flip and torch.rand(()) < 0.5:
                img = img.flip(-1)
        return (img.float() / 255 - self.mean) / self.std, self.y[i]


def reference_epochs(case: Case, epochs: int) -> tuple[list[float], float]:
    """Train like the authors' loop: (step-to-step seconds within epochs, seconds of the last
    epoch with its test pass)."""
    seed_everything(0)
    model = case.spec.build()  # type: ignore[attr-defined]
    s = case.splits
    train_loader = DataLoader(PerSampleDataset(s.train_x, s.train_y, s.info, True), batch_size=case.batch_size,
                              shuffle=True, num_workers=0)  # fmt: skip
    test_loader = DataLoader(PerSampleDataset(s.test_x, s.test_y, s.info, False), batch_size=256, num_workers=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=case.lr, momentum=0.9, weight_decay=1e-4)
    last, steps = 0.0, []
    for _ in range(epochs):
        t0 = time.perf_counter()
        stamps = []
        model.train()
        for x, y in train_loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            stamps.append(time.perf_counter())
        steps.append([b - a for a, b in zip(stamps, stamps[1:])])
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += int((model(x).argmax(1) == y).sum())
        last = time.perf_counter() - t0
    return step_intervals(steps), last


def step_intervals(per_epoch: list[list[float]]) -> list[float]:
    """Within-epoch step-to-step times (each includes fetching that batch), the first epoch's first dropped (warm-up)."""
    return [t for e, times in enumerate(per_epoch) for t in (times[1:] if e == 0 else times)]


# -- prunebench's trainer -----------------------------------------------------------------


class EpochClock(Callback):
    """Timestamps each epoch's end before the trainer's own evaluation: consecutive stamps
    bracket one test pass + one training epoch (+ the metrics and checkpoint writes)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_start(self, ctx: TrainContext) -> None:
        self.stamps.append(time.perf_counter())

    def on_epoch_end(self, ctx: TrainContext) -> None:
        self.stamps.append(time.perf_counter())


def prunebench_epochs(case: Case, epochs: int, precision: str) -> tuple[list[float], float]:
    """Train with prunebench's trainer: (step-to-step seconds within epochs, seconds of the last epoch)."""
    seed_everything(0)
    model = case.spec.build()  # type: ignore[attr-defined]
    clock, steps = EpochClock(), StepClock()
    recipe = Recipe(epochs=epochs, lr=case.lr, batch_size=case.batch_size, precision=precision)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        train(model, case.splits, recipe, out, seed=0, callbacks=[clock, steps], progress=False, eval_test=False,
              test_every_epoch=True)  # fmt: skip
        total = time.perf_counter() - t0
    per_epoch = -(-len(case.splits.train_y) // case.batch_size)
    times = [steps.times[i : i + per_epoch] for i in range(0, len(steps.times), per_epoch)]
    intervals = step_intervals([[b - a for a, b in zip(t, t[1:])] for t in times])
    return intervals, total if epochs == 1 else clock.stamps[-1] - clock.stamps[-2]


# -- the convolution peak ---------------------------------------------------------------


def conv_peak(bf16: bool, repeats: int) -> float:
    """GFLOP/s of a big 3x3 conv's forward + input-gradient + weight-gradient products."""
    n, c, hw = 64, 256, 16
    x = torch.randn(n, c, hw, hw, requires_grad=True)
    conv = nn.Conv2d(c, c, 3, padding=1, bias=False)
    if bf16:
        x = x.detach().to(memory_format=torch.channels_last).requires_grad_()
        conv = conv.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    flops = 3 * 2 * n * c * c * 9 * hw * hw

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = conv(x)
        out.float().sum().backward()

    step()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    return flops / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the goal is per thread)")
    parser.add_argument("--train", type=int, default=512, help="training images per epoch (default 512)")
    parser.add_argument("--test", type=int, default=256, help="test images (default 256)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run; the last one is timed (default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds; the fastest counts (default 2)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch-size", type=int, help="training batch (default: 64, the demo preset's for the demo)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few seconds' check that the script runs (tiny sizes, two small models): numbers mean nothing")
    args = parser.parse_args()
    if args.smoke:
        args.train, args.test, args.epochs, args.rounds, args.models, args.batch_size = 12, 8, 1, 1, "demo,resnet20", 4
    torch.set_num_threads(args.threads)
    print(machine_line() + f"; CPU bf16: {cpu_has_bf16()}\n")
    peaks = {"fp32": conv_peak(False, 1 if args.smoke else 5), "bf16": conv_peak(True, 1 if args.smoke else 5)}
    print(f"conv peak (3x3, 256 ch, 16x16, batch 64, fwd + bwd): fp32 {peaks['fp32']:.0f} GFLOP/s, "
          f"bf16 + channels_last {peaks['bf16']:.0f} GFLOP/s, {args.threads} thread(s)\n")
    print(f"{args.train} training images (the demo: at least 4 of its batches) + {args.test} test images per epoch, {args.epochs} epoch(s) per run, "
          f"{args.rounds} alternating round(s); img/s = batch / median step-to-step time (data, forward, "
          "backward, step); whole epoch = training + test pass + the trainer's per-epoch writes, best round\n")
    print("| model | prunebench default | reference img/s | prunebench img/s | ratio | % of peak | "
          "prunebench fp32 img/s | ratio fp32 | % of fp32 peak | reference % of fp32 peak "
          "| whole epoch img/s: reference | prunebench | prunebench fp32 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in cases(args.models.split(","), args.train, args.test, args.batch_size):
        if len(case.splits.train_y) < 3 * case.batch_size:
            raise SystemExit(f"{case.label}: --train must give at least 3 steps an epoch (batch {case.batch_size})")
        resolved = "bf16" if case.precision == "auto" and cpu_has_bf16() else case.precision
        runs: dict[str, Callable[[], tuple[list[float], float]]] = {
            "reference": lambda: reference_epochs(case, args.epochs),  # noqa: B023
            "default": lambda: prunebench_epochs(case, args.epochs, case.precision),  # noqa: B023
            "fp32": lambda: prunebench_epochs(case, args.epochs, "fp32"),  # noqa: B023
        }
        intervals: dict[str, list[float]] = {k: [] for k in runs}
        epoch: dict[str, float] = {}
        for _ in range(args.rounds):
            for key, run in runs.items():
                steps, seconds = run()
                intervals[key] += steps
                epoch[key] = min(epoch.get(key, float("inf")), seconds)
        rate = {k: case.batch_size / statistics.median(v) for k, v in intervals.items()}
        epoch_rate = {k: len(case.splits.train_y) / v for k, v in epoch.items()}
        train_gflop = 3 * 2 * count_flops(case.spec.build()).macs / 1e9  # type: ignore[attr-defined]
        share = {k: 100 * rate[k] * train_gflop / peaks["bf16" if k == "default" and resolved == "bf16" else "fp32"]
                 for k in rate}  # fmt: skip
        print(f"| {case.label} | {case.precision} ({resolved}) | {rate['reference']:.1f} | {rate['default']:.1f} | "
              f"{rate['default'] / rate['reference']:.2f}x | {share['default']:.0f}% | {rate['fp32']:.1f} | "
              f"{rate['fp32'] / rate['reference']:.2f}x | {share['fp32']:.0f}% | {share['reference']:.0f}% | "
              f"{epoch_rate['reference']:.1f} | {epoch_rate['default']:.1f} | {epoch_rate['fp32']:.1f} |", flush=True)
    print(f"\nafter: {load_average()}")


if __name__ == "__main__":
    main()
