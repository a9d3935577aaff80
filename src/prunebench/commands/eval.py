"""`prunebench eval`: accuracy, parameters and FLOPs of a checkpoint folder."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from prunebench.commands.options import add_data_dir
from prunebench.commands import argtypes
from prunebench.data import list_datasets, load
from prunebench.errors import ConfigError
from prunebench.measure import count_flops, count_params
from prunebench.models import attached_spec
from prunebench.train import evaluate, load_model
from prunebench.train.checkpoint import SPEC_FILE

CONFIG_FILE = "config.json"  # written by `prunebench train` into the run folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "DIR is a checkpoint folder (spec.json + weights.safetensors, e.g. RUN/best) or a run folder, "
        "which means RUN/final. Accuracy is computed in fp32. FLOPs are per image by the reference rule "
        "(sparse for masked checkpoints)."
    )
    parser.add_argument("dir", metavar="DIR", help="checkpoint folder or run folder")
    parser.add_argument("--dataset", choices=list_datasets(), metavar="D",
                        help=f"data set: {', '.join(list_datasets())} (default: the run's, from its config.json)")
    parser.add_argument("--split", choices=("test", "val"), default="test", help="which split to score (default: test)")
    parser.add_argument("--val-size", type=argtypes.COUNT, metavar="N",
                        help="validation split size for --split val (default: the run's, else the data set's)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    add_data_dir(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _checkpoint_dir(path: Path) -> Path:
    """A run folder stands for its final model."""
    return path / "final" if not (path / SPEC_FILE).exists() and (path / "final").is_dir() else path


def _run_config(ckpt: Path) -> dict[str, Any]:
    for folder in (ckpt, ckpt.parent):
        if (folder / CONFIG_FILE).is_file():
            try:
                return dict(json.loads((folder / CONFIG_FILE).read_text()))
            except (OSError, ValueError):
                return {}
    return {}


def run(args: argparse.Namespace) -> int:
    ckpt = _checkpoint_dir(Path(args.dir))
    model, masks, _ = load_model(ckpt)
    config = _run_config(ckpt)
    dataset = args.dataset or config.get("dataset")
    if not dataset:
        raise ConfigError(f"{ckpt}: no run config.json found; pass --dataset")
    val_size = args.val_size if args.val_size is not None else config.get("val_size")
    splits = load(dataset, val_size=val_size, data_dir=args.data_dir)
    spec, info = attached_spec(model), splits.info
    if (spec.num_classes, spec.in_channels, spec.input_size) != (info.num_classes, info.in_channels, info.input_size):
        raise ConfigError(
            f"{ckpt} holds a model for {spec.in_channels}x{spec.input_size}x{spec.input_size} inputs and "
            f"{spec.num_classes} classes; {dataset} has {info.in_channels}x{info.input_size}x{info.input_size} "
            f"and {info.num_classes}"
        )
    x, y = (splits.test_x, splits.test_y) if args.split == "test" else (splits.val_x, splits.val_y)
    if not len(y):
        raise ConfigError(f"{dataset} has an empty {args.split} split here; set --val-size")
    acc = evaluate(model, x, y, info=info, device=args.device)
    params = count_params(model, masks)
    flops = count_flops(model.cpu(), masks=masks)
    report = {
        "checkpoint": str(ckpt), "arch": spec.label, "dataset": dataset, "split": args.split, "images": len(y),
        "accuracy": acc, "params": dataclasses.asdict(params),
        "flops": {"flops": flops.flops, "macs": flops.macs, "mode": flops.mode, "sparse": flops.sparse},
        "masked": masks is not None,
    }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{ckpt}: {spec.label}, {'masked, ' if masks else ''}{dataset} {args.split} split ({len(y)} images)")
        print(f"  accuracy: {acc:.4f}")
        print(f"  params:   {params.total:,} total, {params.nonzero:,} non-zero")
        print(f"  FLOPs:    {flops.flops:,} per image ({flops.mode} rule{', sparse' if flops.sparse else ''}); "
              f"{flops.macs:,} MACs")
    return 0
