"""What the Ray executor costs next to the process pool on the same small preset, on this machine.

`prunebench run PRESET` in a fresh process and a fresh folder, twice: with `--workers W`
(the local process pool) and with `--executor ray` (a local Ray instance started by the run,
W CPUs, one per stage).  Wall time and the CPU seconds of the run and every process it
started, then the ratio Ray / pool from this one run.  Both start from nothing: the Ray
figure includes starting Ray (its raylet, GCS and workers), which is what a user pays.
Prints Markdown tables.

    .venv/bin/python bench/ray_overhead.py [--preset demo-quick] [--workers 2] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import load_average, machine_line

#: --smoke: the smallest real experiment (scikit-learn digits, one epoch, one seed: 4 stages)
SMOKE = """
name = "ray-smoke"
seeds = [0]
log_test_every_epoch = false
[data]
name = "digits"
train_subset = 200
test_subset = 100
val_size = 0
[model]
variant = "resnet20"
width_mult = 0.25
[[methods]]
name = "l1norm"
options = { ratio = 0.5 }
[arms]
unpruned = true
finetuned = true
scratch_e = true
[recipes.large]
epochs = 1
lr = 0.05
precision = "fp32"
[recipes.finetune]
epochs = 1
lr = 0.01
"""


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def whole_run(preset: str, args: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of `prunebench run PRESET ARGS` in a fresh process and folder."""
    env = {**os.environ, "PRUNEBENCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "prunebench.cli", "run", preset, "--out", str(Path(out) / "exp"), *args]
        before, t0 = children_cpu(), time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode:
            sys.exit(f"{' '.join(cmd)} failed: {proc.stderr.strip().splitlines()[-1:]}")
        return time.perf_counter() - t0, children_cpu() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo-quick", help="preset (default demo-quick)")
    parser.add_argument("--workers", type=int, default=2, help="pool size, and Ray's CPUs (default 2)")
    parser.add_argument("--smoke", action="store_true", help="a 4-stage digits preset: numbers mean little")
    args = parser.parse_args()
    print(machine_line() + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        preset = args.preset
        if args.smoke:
            preset = str(Path(tmp) / "ray-smoke.toml")
            Path(preset).write_text(SMOKE)
        print(f"`prunebench run {Path(preset).name if args.smoke else preset}`, fresh folder each time, 1 thread per stage\n")
        print("| executor | wall s | CPU s |")
        print("|---|---:|---:|")
        pool = whole_run(preset, ["--workers", str(args.workers)])
        print(f"| process pool, --workers {args.workers} | {pool[0]:.1f} | {pool[1]:.1f} |", flush=True)
        # the local Ray instance takes every core; RAY_num_cpus is not read: pin the stage count instead
        ray = whole_run(preset, ["--executor", "ray", "--cpus-per-stage", str(max(1, (os.cpu_count() or 1) // args.workers))])
        print(f"| Ray, local instance, {args.workers} stages at once | {ray[0]:.1f} | {ray[1]:.1f} |", flush=True)
    print("\nCPU s: the run and the processes it waited for; Ray's daemons and workers are not waited for,")
    print("so Ray's CPU figure leaves them out (compare the wall times).")
    print(f"\nRay / pool wall time: {ray[0] / pool[0]:.2f}x (one run each)")
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
