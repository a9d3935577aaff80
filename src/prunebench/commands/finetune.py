"""`prunebench finetune CKPT`: fine-tune a pruned checkpoint (masks kept at zero) into a run folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from torch import nn

from prunebench.commands import train as train_cmd
from prunebench.data import load
from prunebench.errors import ConfigError, PrunebenchError
from prunebench.train import seed_everything
from prunebench.train.checkpoint import sha256_hex

INFO_FILE = "prune_info.json"  # what `prunebench prune` writes next to the pruned checkpoint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, metavar="CKPT",
                        help="the pruned checkpoint folder (`prunebench prune --out`), or a training folder (its final/)")
    train_cmd.add_arguments(parser, from_checkpoint=True)
    parser.epilog = "Fine-tuning keeps a masked model's zeros; the method that pruned it adds its fine-tune callbacks."


def checkpoint_config(command: str, args: argparse.Namespace, folder: Path, recipe: Any) -> dict[str, Any]:
    """What identifies a run from a checkpoint: the command, the checkpoint's bytes, data, seed, recipe."""
    weights = (folder / "weights.safetensors").read_bytes() if (folder / "weights.safetensors").is_file() else b""
    return {
        "command": command, "checkpoint": str(folder), "checkpoint_sha256": sha256_hex(weights),
        "dataset": args.dataset, "seed": args.seed, "val_size": args.val_size, "train_subset": args.train_subset,
        "recipe": recipe.to_dict(),
    }  # fmt: skip


def load_pruned(path: Path) -> tuple[Path, nn.Module, Any, dict[str, Any]]:
    """(folder, model, masks, meta) of a pruned checkpoint."""
    from prunebench.commands.prune import checkpoint_dir
    from prunebench.train import load_model

    folder = checkpoint_dir(path)
    model, masks, meta = load_model(folder)
    return folder, model, masks, meta or {}


def finetune_callbacks(folder: Path, model: nn.Module, masks: Any, meta: dict[str, Any]) -> list[Any]:
    """The fine-tune callbacks of the method that pruned the checkpoint (none for a plain one)."""
    from prunebench.prune import PruneResult, get_method

    name = meta.get("pruned_by")
    if not name or not (folder / INFO_FILE).is_file():
        return []
    info = json.loads((folder / INFO_FILE).read_text())
    method = get_method(name)
    try:
        opts = method.parse_options({k: v for k, v in (info.get("options") or {}).items() if v is not None})
    except PrunebenchError:
        return []  # options written by another version: fine-tune without the method's extras
    return method.finetune_callbacks(opts, PruneResult(model, masks, info.get("kept"), info.get("info") or {}))


def run(args: argparse.Namespace) -> int:
    recipe = train_cmd.recipe_from_args(args)
    folder, model, masks, meta = load_pruned(args.checkpoint)
    out = Path(args.out or f"runs/finetune/{folder.parent.name if folder.name == 'final' else folder.name}-seed{args.seed}")
    config = checkpoint_config("finetune", args, folder, recipe)
    train_cmd.check_config(out, config)
    splits = load(args.dataset, val_size=args.val_size, train_subset=args.train_subset, data_dir=args.data_dir)
    seed_everything(args.seed)
    callbacks = finetune_callbacks(folder, model, masks, meta)
    return train_from_checkpoint(args, model, splits, recipe, out, config, f"fine-tuned {folder}", callbacks=callbacks, masks=masks)


def train_from_checkpoint(
    args: argparse.Namespace, model: nn.Module, splits: Any, recipe: Any, out: Path, config: dict[str, Any], label: str,
    *, callbacks: list[Any] | None = None, masks: Any = None,
) -> int:
    """Train `model` in the run folder `out` as `prunebench train` does (resumable, skip-if-finished)."""
    from prunebench.train import train
    from prunebench.train.speed import resolve_device
    from prunebench.train.threads import thread_policy, use_threads

    if getattr(args, "ddp", False):
        raise ConfigError("--ddp: fine-tune and scratch runs train in one process; use `prunebench train --ddp`")
    resolve_device(args.device)
    threads = thread_policy(args.threads)
    train_cmd.prepare_run_folder(out, config, recipe)
    with use_threads(threads):
        result = train(model, splits, recipe, out, seed=args.seed, device=args.device, callbacks=callbacks or [], masks=masks)
    if args.json:
        print(json.dumps({"out": str(out), **result.to_dict()}, indent=1))
    else:
        print(train_cmd.summary(label, args.dataset, out, result))
    return 0
