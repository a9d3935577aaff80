"""Wall time of `prunebench demo` and the machine's load while it ran (results: bench/demo.md).

Runs the demo as a user would (a fresh `--out` folder, so nothing is reused), samples the
1-minute load average every `--every` seconds, and prints a Markdown summary: wall time,
load average (min / median / max over the run), CPU, cores, torch, and the accuracy of
every arm (mean ± sample std over seeds, from the run's results.json).  The load average
matters because this project's 2-core machine is shared: a timing is only comparable with
another taken at a similar load.

    .venv/bin/python bench/demo.py [--quick | --full] [--workers N] [--out DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from prunebench.report import summary_table


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class LoadSampler(threading.Thread):
    """Samples the 1-minute load average until stopped."""

    def __init__(self, every: float) -> None:
        super().__init__(daemon=True)
        self.every, self.samples = every, [os.getloadavg()[0]]
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            self.samples.append(os.getloadavg()[0])


def arm_table(out: Path) -> list[str]:
    rows = json.loads((out / "results.json").read_text())
    cells: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        cells.setdefault((r["method"], r["arm"]), []).append(100 * r["primary_acc"])
    lines = ["| method | arm | accuracy % (mean ± std, n) |", "|---|---|---|"]
    for (method, arm), accs in sorted(cells.items()):
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        lines.append(f"| {method} | {arm} | {statistics.mean(accs):.2f} ± {std:.2f} (n={len(accs)}) |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true")
    size.add_argument("--smoke", action="store_true", help="the same as --quick (what CI runs)")
    size.add_argument("--full", action="store_true")
    parser.add_argument("--workers", type=int, help="passed to `prunebench demo` (default: the demo's own)")
    parser.add_argument("--out", type=Path, help="experiment folder (default: a fresh temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between load samples")
    args = parser.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="prunebench-demo-bench-"))
    cmd = [sys.executable, "-m", "prunebench.cli", "demo", "--out", str(out)]
    cmd += ["--quick"] if args.quick or args.smoke else ["--full"] if args.full else []
    cmd += ["--workers", str(args.workers)] if args.workers else []
    sampler = LoadSampler(args.every)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    sampler.start()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    sampler.done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        return proc.returncode
    loads = sampler.samples + [os.getloadavg()[0]]
    print(f"`{' '.join(['prunebench', *cmd[3:]])}` started {started}")
    print()
    print(f"- wall time: **{wall / 60:.1f} min** ({wall:.0f} s)")
    print(f"- load average (1 min) during the run: min {min(loads):.2f}, median {statistics.median(loads):.2f}, "
          f"max {max(loads):.2f} ({len(loads)} samples)")
    print(f"- machine: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}; Python {platform.python_version()}")
    print()
    print("\n".join(arm_table(out)))
    print()
    print(summary_table(out))
    if args.out is None and not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    else:
        print(f"\nexperiment folder: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
