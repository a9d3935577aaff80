"""`prunebench demo`: the README's main job, Fashion-MNIST, a small VGG, L1-norm and slimming, all arms."""

from __future__ import annotations

import argparse
from pathlib import Path

from prunebench.experiment import load_preset, run_experiment
from prunebench.report import summary_table, write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a smoke run (600 images, 1-3 epochs, tiny width; about a minute or less on 2 CPU cores)")
    parser.add_argument("--out", metavar="DIR", help="experiment folder (default: runs/demo or runs/demo-quick)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="stages run in N local processes (default 1)")
    parser.epilog = (
        "Trains a VGG at reduced width on a class-balanced Fashion-MNIST subset, prunes it with L1-norm and "
        "Network Slimming, and trains every control arm (fine-tuned, Scratch-E, Scratch-B, ...) for 3 seeds. "
        "Rerunning it does nothing; an interrupted run resumes."
    )


def run(args: argparse.Namespace) -> int:
    preset = load_preset("demo-quick" if args.quick else "demo")
    out = Path(args.out or Path("runs") / preset.name)
    run_experiment(preset, out, workers=args.workers)
    report = write_report(out)
    print()
    print(summary_table(out))
    print(f"\nfull report (tables with CIs and t-tests, plots, provenance): {report}")
    return 0
