"""`prunebench run PRESET`: every arm x seed of an experiment preset, then its report."""

from __future__ import annotations

import argparse
from pathlib import Path

from prunebench.commands import argtypes
from prunebench.limits import bounds
from prunebench.outputs import claim_dir
from prunebench.commands.options import add_data_dir, add_threads
from prunebench.train.threads import thread_policy
from prunebench.experiment import format_plan, list_presets, load_preset, run_experiment
from prunebench.experiment.overrides import apply_overrides, to_toml
from prunebench.experiment.planning import plan_dry_run
from prunebench.train.speed import resolve_device
from prunebench.experiment.preset import Preset, read_preset


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "preset",
        metavar="PRESET",
        help=f"a preset TOML file, or the name of a shipped preset ({', '.join(list_presets())})",
    )
    parser.add_argument("--out", metavar="DIR", help="experiment folder (default: runs/<preset name>)")
    parser.add_argument("--seeds", type=argtypes.SEEDS, metavar="N",
                        help=f"run the first N seeds ({bounds('seeds')}; extended with new ones if N exceeds the preset's list)")
    parser.add_argument("--workers", type=argtypes.WORKERS, default=1, metavar="N",
                        help=f"stages run in N local processes ({bounds('workers')}; default 1: in this process)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N, checked before anything is loaded (default: cuda if available, else cpu)")
    add_data_dir(parser)
    add_threads(parser)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="override a preset key, e.g. recipes.large.epochs=10 or methods[0].options.ratio=0.3; VALUE is "
        "TOML (10, 0.05, true, [0, 1], \"text\"; bare text is a string); checked like the file; repeatable",
    )  # fmt: skip
    parser.add_argument("--print-config", action="store_true", help="print the effective preset (with --set and --seeds) as TOML and stop")
    parser.add_argument("--mlflow", metavar="URI", help="also export the finished stages to MLflow at URI (e.g. file:///tmp/mlruns); needs prunebench[mlflow]")
    parser.add_argument(
        "--dry-run", action="store_true",
        help="print the stage graph (folders, recipes, Scratch-B budgets, what --out already holds) and stop; "
        "nothing is trained; data already on this machine is read (never downloaded) so the ids are the run's",
    )  # fmt: skip
    parser.epilog = "Finished stages are never recomputed: rerunning resumes an interrupted experiment or does nothing."


def run(args: argparse.Namespace) -> int:
    from prunebench.report import write_report  # scipy + matplotlib: only when a report is written

    preset = load_preset(args.preset, args.overrides)
    if args.seeds is not None:
        preset = preset.with_seeds(args.seeds)
    if args.print_config:
        print(effective_toml(args, preset))
        return 0
    out = Path(args.out or Path("runs") / preset.name)
    if args.dry_run:
        print(format_plan(*plan_dry_run(preset, out, args.data_dir)))
        return 0
    if args.device is not None:
        resolve_device(args.device)  # before --out is created or any data is read
    threads = thread_policy(args.threads, workers=args.workers)
    claim_out(out)
    summary = run_experiment(preset, out, workers=args.workers, device=args.device, data_dir=args.data_dir,
                             threads=threads)
    report = write_report(out)
    if args.mlflow:
        from prunebench.report.mlflow_export import export_mlflow

        print(f"MLflow: {export_mlflow(out, args.mlflow)} stage(s) exported to {args.mlflow}")
    print(f"{summary.ran} stage(s) run, {summary.already_done} already done; report: {report}")
    return 0


def claim_out(out: Path) -> None:
    """Refuse a user's folder (or a file, or a read-only folder) as --out before anything runs; an
    experiment folder from before markers is recognised by its store."""
    from prunebench.experiment.store import STORE_FILE

    claim_dir(out, recognise=lambda d: (d / STORE_FILE).is_file())


def effective_toml(args: argparse.Namespace, preset: Preset) -> str:
    """The preset file with the --set overrides and --seeds applied: what `run` would run."""
    raw, label = read_preset(args.preset)
    raw = apply_overrides(raw, args.overrides, label)
    raw["seeds"] = list(preset.seeds)
    changes = [f"--set {o}" for o in args.overrides] + ([f"--seeds {args.seeds}"] if args.seeds is not None else [])
    head = f"# effective preset: {label}" + (f" with {' '.join(changes)}" if changes else "")
    return f"{head}\n{to_toml(raw)}"
