"""`prunebench scratch CKPT --budget E|B`: train a pruned checkpoint's architecture from a fresh init.

Scratch-E trains for the given epochs (the large model's schedule); Scratch-B stretches them by the
FLOPs ratio of the large model (`--large`, by default the checkpoint `prunebench prune` started from)
to the pruned one, the same rule the experiments use (`measure.scratch_b_budget`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prunebench.commands import train as train_cmd
from prunebench.commands.finetune import checkpoint_config, load_pruned, train_from_checkpoint
from prunebench.data import load
from prunebench.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, metavar="CKPT", help="the pruned checkpoint folder (`prunebench prune --out`)")
    parser.add_argument("--budget", choices=("E", "B"), required=True,
                        help="E: the given epochs; B: the epochs times FLOPs(large) / FLOPs(pruned)")
    parser.add_argument("--large", type=Path, metavar="DIR",
                        help="the large model's checkpoint, for --budget B (default: the one the checkpoint was pruned from)")
    train_cmd.add_arguments(parser, from_checkpoint=True)
    parser.epilog = "The seed decides the fresh init; a masked checkpoint is redrawn under its masks (sparse He init)."


def run(args: argparse.Namespace) -> int:
    from prunebench.commands.prune import checkpoint_dir
    from prunebench.measure import BudgetPolicy, flops_ratio, scratch_b_budget
    from prunebench.prune.scratch import scratch_model
    from prunebench.train import load_model

    if args.large is not None and args.budget == "E":
        raise ConfigError("--large is used by --budget B only")
    recipe = train_cmd.recipe_from_args(args)
    folder, pruned, masks, meta = load_pruned(args.checkpoint)
    extra = {}
    if args.budget == "B":
        source = args.large or (Path(meta["source"]) if meta.get("source") else None)
        if source is None:
            raise ConfigError(f"{folder}: does not name the model it was pruned from; give --large")
        large, _, _ = load_model(checkpoint_dir(source))
        ratio = flops_ratio(large, pruned, masks)
        budget = scratch_b_budget(recipe.epochs, recipe.milestones, ratio, BudgetPolicy())
        recipe = recipe.replace(epochs=budget.epochs, milestones=budget.milestones)
        extra = {"flops_ratio": ratio, "large": str(checkpoint_dir(source))}
    name = folder.parent.name if folder.name == "final" else folder.name
    out = Path(args.out or f"runs/scratch/{name}-{args.budget}-seed{args.seed}")
    config = {**checkpoint_config(f"scratch_{args.budget}", args, folder, recipe), **extra}
    train_cmd.check_config(out, config)
    splits = load(args.dataset, val_size=args.val_size, train_subset=args.train_subset, data_dir=args.data_dir)
    model, masks = scratch_model(pruned, seed=args.seed, masks=masks, selection_from=pruned)
    return train_from_checkpoint(args, model, splits, recipe, out, config, f"Scratch-{args.budget} of {folder}", masks=masks)
