"""Threads: does the count change results, and what is each count worth on this machine right now?

1. Reproducibility: the same seeded run (one epoch through the real trainer, fp32 and
   bf16) at 1 and at 2 threads; prints whether the final weights are bit-identical and
   the largest difference.  (They are not: reductions are split differently; that is
   why `train/threads.py` only adapts the count when it is not pinned.)
2. Speed: training img/s of VGG-16 (CIFAR shape) at 1 and 2 threads in one process,
   alternating, median step time, with the load average (other jobs make 2 threads
   much slower than 1), and the count `ThreadPolicy()` would choose now.

    .venv/bin/python bench/threads.py [--steps 4] [--rounds 2] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch
from benchkit import StepClock, load_average, machine_line, synthetic_cifar

from prunebench.models import variant
from prunebench.train import Recipe, seed_everything, train
from prunebench.train.threads import ThreadPolicy, free_cores


def trained_weights(name: str, threads: int, precision: str, n: int, width: float) -> dict[str, torch.Tensor]:
    torch.set_num_threads(threads)
    splits = synthetic_cifar(n)
    seed_everything(0)
    model = variant(name, splits.info, width_mult=width).build()
    recipe = Recipe(epochs=1, lr=0.05, batch_size=32, precision=precision)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as out:
        train(model, splits, recipe, out, seed=0, progress=False, eval_test=False)
    return model.state_dict()


def step_rate(name: str, threads: int, steps: int, batch: int, width: float) -> list[float]:
    """Step durations (s) of a short fp32 run at `threads` threads (the first step is warm-up)."""
    torch.set_num_threads(threads)
    splits = synthetic_cifar(batch * (steps + 1))
    seed_everything(0)
    model = variant(name, splits.info, width_mult=width).build()
    clock = StepClock()
    recipe = Recipe(epochs=1, lr=0.05, batch_size=batch, precision="fp32")
    with tempfile.TemporaryDirectory() as out:
        train(model, splits, recipe, out, seed=0, callbacks=[clock], progress=False, eval_test=False)
    return [b - a for a, b in zip(clock.times, clock.times[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per run (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few seconds' check that the script runs (1 thread only for speed): numbers mean nothing")
    args = parser.parse_args()
    # smoke: tiny, and no 2-thread speed runs (on a busy CI machine they are the slow case measured here)
    name, width, n, batch = ("resnet20", 0.25, 16, 8) if args.smoke else ("vgg16", 1.0, 256, 64)
    counts = (1,) if args.smoke else (1, 2)
    if args.smoke:
        args.steps, args.rounds = 2, 1
    print(machine_line() + "\n")
    print(f"| {name} x{width:g}, one epoch of {n} images | 1 vs 2 threads | largest weight difference |")
    print("|---|---|---:|")
    for precision in ("fp32",) if args.smoke else ("fp32", "bf16"):
        a = trained_weights(name, 1, precision, n, width)
        b = trained_weights(name, 2, precision, n, width)
        same = all(torch.equal(a[k], b[k]) for k in a)
        diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
        print(f"| {precision} | {'bit-identical' if same else 'differ'} | {diff:.2e} |", flush=True)
    durations: dict[int, list[float]] = {c: [] for c in counts}
    for _ in range(args.rounds):
        for threads in counts:
            durations[threads] += step_rate(name, threads, args.steps, batch, width)
    print(f"\n| {name} x{width:g} fp32, batch {batch} | img/s (median step) |")
    print("|---|---:|")
    for threads, d in durations.items():
        print(f"| {threads} thread(s) | {batch / statistics.median(d):.1f} |")
    print(f"\n{load_average()}; free cores now {free_cores(1):.2f}: ThreadPolicy() would use "
          f"{ThreadPolicy().choose(running=1)} thread(s)")


if __name__ == "__main__":
    main()
