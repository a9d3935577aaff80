"""`prunebench demo`: the README's main job, Fashion-MNIST, a small VGG, L1-norm and slimming, all arms."""

from __future__ import annotations

import argparse
from pathlib import Path

from prunebench.commands.options import add_data_dir, add_threads
from prunebench.train.threads import thread_policy, usable_cores
from prunebench.experiment import load_preset, run_experiment
from prunebench.commands import argtypes
from prunebench.commands.run import claim_out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="a smoke run (600 images, 1-3 epochs, tiny width; about a minute or less on 2 CPU cores); its numbers mean nothing")
    size.add_argument("--full", action="store_true", help="5 seeds and doubled schedules (the demo's convergence control; about 3 h 20 min on 2 CPU cores)")
    parser.add_argument("--out", metavar="DIR", help="experiment folder (default: runs/demo, runs/demo-quick or runs/demo-full)")
    parser.add_argument("--workers", type=argtypes.WORKERS, metavar="N",
                        help="stages run in N local processes, sharing the cores (1..256; default: one per CPU core, "
                        "at most 6, on the CPU; 1 on a GPU and for --quick, whose stages are too small to gain)")
    add_data_dir(parser)
    add_threads(parser)
    parser.epilog = (
        "Trains VGG-11 at 1/4 width for 12 epochs (about 92.7%, converged) on the full Fashion-MNIST, prunes it with L1-norm and "
        "Network Slimming, and trains every control arm (fine-tuned, Scratch-E, Scratch-B, ...) for 3 seeds. "
        "About an hour on 2 CPU cores. Rerunning it does nothing; an interrupted run resumes."
    )


def default_workers(quick: bool) -> int:
    """One single-thread worker per core on the CPU: the demo's small nets scale better over
    processes than over threads (1.07x, bench/demo.md); six large models are the most that can run at
    once. One process on a GPU, and for the smoke run, whose stages are shorter than a worker's start."""
    import torch

    if quick or torch.cuda.is_available():
        return 1
    return min(usable_cores(), 6)


def run(args: argparse.Namespace) -> int:
    from prunebench.report import summary_table, write_report  # scipy + matplotlib: only when a report is written

    preset = load_preset("demo-quick" if args.quick else "demo-full" if args.full else "demo")
    out = Path(args.out or Path("runs") / preset.name)
    claim_out(out)
    workers = args.workers or default_workers(args.quick)
    run_experiment(preset, out, workers=workers, data_dir=args.data_dir,
                   threads=thread_policy(args.threads, workers=workers))
    report = write_report(out)
    print()
    print(summary_table(out))
    print(f"\nfull report (tables with CIs and t-tests, plots, provenance): {report}")
    return 0
