"""`prunebench run PRESET`: every arm x seed of an experiment preset, then its report."""

from __future__ import annotations

import argparse
from pathlib import Path

from prunebench.experiment import expand, format_plan, list_presets, load_preset, run_experiment
from prunebench.report import write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "preset",
        metavar="PRESET",
        help=f"a preset TOML file, or the name of a shipped preset ({', '.join(list_presets())})",
    )
    parser.add_argument("--out", metavar="DIR", help="experiment folder (default: runs/<preset name>)")
    parser.add_argument("--seeds", type=int, metavar="N", help="run the first N seeds (extended with new ones if N exceeds the preset's list)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="stages run in N local processes (default 1: in this process)")
    parser.add_argument("--device", help="torch device for training (default: the trainer's choice)")
    parser.add_argument("--dry-run", action="store_true", help="print the stage graph and stop; nothing is trained and no data is loaded")
    parser.epilog = "Finished stages are never recomputed: rerunning resumes an interrupted experiment or does nothing."


def run(args: argparse.Namespace) -> int:
    preset = load_preset(args.preset)
    if args.seeds is not None:
        preset = preset.with_seeds(args.seeds)
    if args.dry_run:
        print(format_plan(expand(preset)))
        return 0
    out = Path(args.out or Path("runs") / preset.name)
    summary = run_experiment(preset, out, workers=args.workers, device=args.device)
    report = write_report(out)
    print(f"{summary.ran} stage(s) run, {summary.already_done} already done; report: {report}")
    return 0
