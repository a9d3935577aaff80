"""`prunebench run PRESET`: every arm x seed of an experiment preset, then its report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

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
    parser.add_argument("--workers", type=argtypes.WORKERS, default=None, metavar="N",
                        help=f"stages run in N local processes ({bounds('workers')}; default: one per GPU with GPUs, "
                        "else 1: in this process)")
    parser.add_argument("--devices", metavar="LIST",
                        help="pin each worker to a device, round-robin: cuda:0,cuda:1,... or all (several workers may share one)")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="local: this process or --workers processes (default); ray: each stage a Ray task")
    parser.add_argument("--address", metavar="ADDR",
                        help="with --executor ray: join this cluster (auto, ray://host:port); default: start a local Ray")
    parser.add_argument("--gpus-per-stage", type=float, metavar="F",
                        help="with --executor ray: GPUs each stage asks for (default 0.25 for CIFAR/Fashion-MNIST, 1 for ImageNet)")
    parser.add_argument("--cpus-per-stage", type=float, default=1.0, metavar="N",
                        help="with --executor ray: CPUs each stage asks for (default 1)")
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
    claim_out(out)
    executor, devices, workers = scale_options(args, out)
    threads = thread_policy(args.threads, workers=workers)
    try:
        summary = run_experiment(preset, out, workers=workers, device=args.device, data_dir=args.data_dir,
                                 threads=threads, executor=executor, devices=devices)
    finally:
        if executor is not None:
            executor.close()
    report = write_report(out)
    if args.mlflow:
        from prunebench.report.mlflow_export import export_mlflow

        print(f"MLflow: {export_mlflow(out, args.mlflow)} stage(s) exported to {args.mlflow}")
    print(f"{summary.ran} stage(s) run, {summary.already_done} already done; report: {report}")
    if summary.skipped_images:
        print(f"{len(summary.skipped_images)} image(s) skipped: they do not decode (first: {summary.skipped_images[0]})")
    return 0


def scale_options(args: argparse.Namespace, out: Path) -> tuple[Any, list[str | None] | None, int]:
    """(executor, each worker's device, how many stages run at once) from --executor/--workers/--devices."""
    from prunebench.errors import PrunebenchError
    from prunebench.experiment.executor import assign_devices

    if args.executor == "ray":
        if args.workers is not None or args.devices is not None:
            raise PrunebenchError("--workers/--devices are for the local executor; Ray places stages itself "
                                  "(--cpus-per-stage, --gpus-per-stage)")  # fmt: skip
        from prunebench.experiment.ray_executor import RayExecutor

        ray_executor = RayExecutor(out, address=args.address, gpus_per_stage=args.gpus_per_stage, cpus_per_stage=args.cpus_per_stage)
        return ray_executor, None, ray_executor.capacity
    if args.address is not None or args.gpus_per_stage is not None:
        raise PrunebenchError("--address/--gpus-per-stage need --executor ray")
    if args.device is not None and args.devices is not None:
        raise PrunebenchError("give --device (one for all) or --devices (one per worker), not both")
    if args.device is not None:
        return None, None, args.workers or 1
    import torch

    devices = assign_devices(args.workers, args.devices, torch.cuda.device_count())
    return None, (devices if any(devices) else None), len(devices)


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
