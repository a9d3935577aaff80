"""What the process pool (`prunebench run --workers N`) costs and buys: worker start-up, then whole runs.

Part 1, start-up: a spawn-context worker (what `PoolExecutor` uses) is started and
imports what a stage needs (the runner, hence torch and prunebench) and loads the
preset's data set, as a pool worker does once before its first stage; its wall time
and CPU seconds are measured from the parent (children's resource usage), next to
the same work in this already-warm process.

Part 2, whole runs (skipped by `--smoke`): `prunebench run PRESET` in a fresh
process and a fresh folder, by default with 1 worker at 1 and at 2 threads and with N
workers at 1 thread each (`--configs`); wall time and the CPU seconds of the run and
every process it started.
Prints Markdown tables.

    .venv/bin/python bench/pool_overhead.py [--preset demo-quick] [--workers 2] [--configs 1x1,2x1] [--smoke]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

from benchkit import load_average, machine_line


def stage_start(preset_name: str) -> float:
    """A pool worker's first-stage preparation; returns the CPU seconds it took in that process."""
    t0 = time.process_time()
    from prunebench.experiment import load_preset
    from prunebench.experiment.planning import plan_run
    from prunebench.experiment.stages import load_splits

    stage = plan_run(load_preset(preset_name)).stages[0]
    load_splits(stage.config["data"])
    return time.process_time() - t0


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def worker_start(preset: str) -> tuple[float, float, float]:
    """(wall s, CPU s of the worker process, CPU s inside the task) of one spawned worker's start-up."""
    before, t0 = children_cpu(), time.perf_counter()
    with futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        inside = pool.submit(stage_start, preset).result()
    return time.perf_counter() - t0, children_cpu() - before, inside


def whole_run(preset: str, workers: int, threads: int) -> tuple[float, float]:
    """(wall s, CPU s) of `prunebench run` in a fresh process and folder."""
    env = {**os.environ, "PRUNEBENCH_THREADS": str(threads)}
    env.pop("OMP_NUM_THREADS", None)
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "prunebench.cli", "run", preset, "--out", str(Path(out) / "exp"),
               "--workers", str(workers)]  # fmt: skip
        before, t0 = children_cpu(), time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0, children_cpu() - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo-quick", help="preset of the whole runs (default demo-quick)")
    parser.add_argument("--workers", type=int, default=2, help="pool size of the pooled run (default 2)")
    parser.add_argument("--configs", default="1x1,1x2,Wx1",
                        help="whole runs as workers x threads, W = --workers (default 1x1,1x2,Wx1)")
    parser.add_argument("--smoke", action="store_true", help="part 1 only (a few seconds): numbers mean nothing")
    args = parser.parse_args()
    print(machine_line() + "\n")
    from prunebench.experiment import stages

    stage_start(args.preset)  # imports done here: what is left is planning + loading the data
    stages._SPLITS.clear()
    warm = stage_start(args.preset)
    wall, cpu, inside = worker_start(args.preset)
    print("| worker start-up (spawn, import, load data) | wall s | CPU s |")
    print("|---|---:|---:|")
    print(f"| a fresh spawned worker, whole process | {wall:.2f} | {cpu:.2f} |")
    print(f"| of which its first stage's imports + data load | | {inside:.2f} |")
    print(f"| the same task in this process, imports already done | | {warm:.2f} |")
    if args.smoke:
        return
    print(f"\n`prunebench run {args.preset}`, fresh folder each time\n")
    print("| workers x threads | wall s | CPU s | CPU / wall |")
    print("|---|---:|---:|---:|")
    configs = [c.replace("W", str(args.workers)).split("x") for c in args.configs.split(",")]
    for workers, threads in ((int(w), int(t)) for w, t in configs):
        wall, cpu = whole_run(args.preset, workers, threads)
        print(f"| {workers} x {threads} | {wall:.1f} | {cpu:.1f} | {cpu / wall:.2f} |", flush=True)
    print(f"\nafter: {load_average()}")


if __name__ == "__main__":
    main()
