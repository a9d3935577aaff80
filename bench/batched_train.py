"""Images/s of K same-architecture models trained together (`train_group`) vs one after the other.

For the demo net (`variant("vgg11", fashion-mnist, width_mult=0.25)`, 1x28x28, batch 256) and
ResNet-20 (3x32x32, batch 128), both on random images, with `precision="auto"` (bf16 +
channels_last where the CPU has native bf16), for K = 1, 3, 5 and 1 and 2 torch threads:
one short epoch of K models through `train_group` and the same K models through `train()`
one after the other, alternating in `--rounds` rounds so both see the same background load.
A callback timestamps the optimizer steps (in a group: member 0's, one per group step); the
first `--warmup` steps are dropped and the median step time gives images/s. The ratio
(together / one after the other) is what the grouping policy reads. Prints a Markdown table
and the load average before and after (results: bench/batched_train.md).

    .venv/bin/python bench/batched_train.py [--ks 1,3,5] [--threads 1,2] [--steps 3] [--warmup 2]
                                            [--rounds 2] [--nets demo,resnet20] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from benchkit import StepClock, load_average, machine_line, synthetic_cifar

from prunebench.data import Splits, dataset_info
from prunebench.models import ModelSpec, build_model, variant
from prunebench.train import Recipe, seed_everything, train
from prunebench.train.batched import Member, train_group

NETS = {"demo": 256, "resnet20": 128}  # net -> batch size


def synthetic_fashion(n: int, seed: int = 0) -> Splits:
    """`n` random uint8 Fashion-MNIST-shaped training images."""
    info = dataset_info("fashion-mnist")
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return Splits(info, x, y, x[:0], y[:0], x[:0], y[:0], source="synthetic", split_hash="synthetic")


def spec_and_data(net: str, n: int) -> tuple[ModelSpec, Splits]:
    if net == "demo":
        splits = synthetic_fashion(n)
        return variant("vgg11", splits.info, width_mult=0.25), splits
    splits = synthetic_cifar(n)
    return variant(net, splits.info), splits


def step_times(clock: StepClock, warmup: int) -> list[float]:
    timed = clock.times[warmup - 1:]
    return [b - a for a, b in zip(timed, timed[1:])]


def together(spec: ModelSpec, splits: Splits, recipe: Recipe, k: int, warmup: int) -> float:
    """Images/s of K models stepped together."""
    clock = StepClock()
    with tempfile.TemporaryDirectory() as out:
        members = []
        for seed in range(k):
            seed_everything(seed)
            members.append(Member(build_model(spec), Path(out) / str(seed), seed, callbacks=[clock] if seed == 0 else []))
        train_group(members, splits, recipe, progress=False, eval_test=False, tensorboard=False)
    return k * recipe.batch_size / statistics.median(step_times(clock, warmup))


def one_after_another(spec: ModelSpec, splits: Splits, recipe: Recipe, k: int, warmup: int) -> float:
    """Images/s of the same K models trained with `train()` one after the other."""
    durations: list[float] = []
    with tempfile.TemporaryDirectory() as out:
        for seed in range(k):
            seed_everything(seed)
            clock = StepClock()
            train(build_model(spec), splits, recipe, Path(out) / str(seed), seed=seed, callbacks=[clock],
                  progress=False, eval_test=False, tensorboard=False)  # fmt: skip
            durations += step_times(clock, warmup)
    return recipe.batch_size / statistics.median(durations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="1,3,5", help="group sizes")
    parser.add_argument("--threads", default="1,2", help="torch CPU thread counts")
    parser.add_argument("--nets", default=",".join(NETS))
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 1)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of together / one after another")
    parser.add_argument("--smoke", action="store_true",
                        help="a few seconds' check that the script runs (tiny batches): numbers mean nothing")
    args = parser.parse_args()
    batch = dict(NETS)
    if args.smoke:
        args.ks, args.threads, args.steps, args.warmup, args.rounds = "1,2", "1", 1, 1, 1
        batch = {net: 4 for net in NETS}
    if args.warmup < 1:
        parser.error("--warmup must be >= 1 (the first timestamp starts the clock)")
    print(f"{machine_line()}; precision auto, {args.rounds} rounds of {args.warmup} warm-up + {args.steps} "
          f"timed steps, images/s from the median step time\n")
    print("| net | batch | threads | K | together (img/s) | one after another (img/s) | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for net in args.nets.split(","):
        spec, splits = spec_and_data(net, batch[net] * (args.steps + args.warmup))
        recipe = Recipe(epochs=1, lr=0.05, batch_size=batch[net])
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            for k in (int(v) for v in args.ks.split(",")):
                rates: dict[str, list[float]] = {"together": [], "apart": []}
                for _ in range(args.rounds):
                    rates["together"].append(together(spec, splits, recipe, k, args.warmup))
                    rates["apart"].append(one_after_another(spec, splits, recipe, k, args.warmup))
                tog, apart = statistics.median(rates["together"]), statistics.median(rates["apart"])
                print(f"| {net} | {batch[net]} | {threads} | {k} | {tog:.0f} | {apart:.0f} | {tog / apart:.2f}x |",
                      flush=True)
    print(f"\nafter: {load_average()}")


if __name__ == "__main__":
    main()
