"""Workers: two single-thread processes, or one process with two threads, for the demo's training?

Trains the demo's large model (the shipped `demo` preset's, one epoch) on the real
Fashion-MNIST for the same number of images three ways, each measured in the same run:

  a) one process, 1 thread, alone            (the per-core speed)
  b) one process, 2 threads                  (`--workers 1` on 2 cores)
  c) two 1-thread processes at the same time (`--workers 2`: the demo's default)

and prints each mode's total images/s, the ratio c/b, and the load average before and after.

    .venv/bin/python bench/workers.py [--images 11000] [--rounds 2] [--smoke]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time

import torch
from benchkit import demo_large, load_average, machine_line

from prunebench.models import build_model
from prunebench.train import seed_everything, train


def one_run(threads: int, images: int, seed: int) -> float:
    """Seconds to train one epoch over `images` class-balanced training images."""
    torch.set_num_threads(threads)
    splits, spec, recipe = demo_large(1, val_size=0, train_subset=images)
    seed_everything(seed)
    model = build_model(spec)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        train(model, splits, recipe, out, seed=seed, progress=False, eval_test=False, tensorboard=False)
        return time.perf_counter() - start


def _child(args: tuple[int, int, int]) -> float:
    return one_run(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=11000, help="training images per run (default 11000)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three modes, alternating (default 2)")
    parser.add_argument("--smoke", action="store_true", help="512 images, 1 round (numbers meaningless)")
    args = parser.parse_args()
    if args.smoke:
        args.images, args.rounds = 512, 1
    print(machine_line())
    print(f"load average before: {load_average()}")
    ctx = mp.get_context("spawn")
    rates: dict[str, list[float]] = {"a) 1 process x 1 thread": [], "b) 1 process x 2 threads": [],
                                     "c) 2 processes x 1 thread": []}
    with ctx.Pool(2) as pool:
        pool.map(_child, [(1, 512, 0), (1, 512, 1)])  # warm both workers (imports, data parse)
        for _ in range(args.rounds):
            rates["a) 1 process x 1 thread"].append(args.images / pool.apply(_child, ((1, args.images, 0),)))
            rates["b) 1 process x 2 threads"].append(args.images / pool.apply(_child, ((2, args.images, 0),)))
            start = time.perf_counter()
            pool.map(_child, [(1, args.images, 0), (1, args.images, 1)])
            rates["c) 2 processes x 1 thread"].append(2 * args.images / (time.perf_counter() - start))
    print("| mode | img/s (median) | rounds |")
    print("|---|---:|---|")
    for mode, r in rates.items():
        print(f"| {mode} | {statistics.median(r):,.0f} | {', '.join(f'{x:,.0f}' for x in r)} |")
    b, c = statistics.median(rates["b) 1 process x 2 threads"]), statistics.median(rates["c) 2 processes x 1 thread"])
    print(f"c / b = {c / b:.2f}  (above 1: one single-thread worker per core is faster)")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
