"""`prunebench train`: train (or resume) a named architecture into a run folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from prunebench.commands.options import add_data_dir, add_threads
from prunebench.commands.sparsity import sparsity_training
from prunebench.data import DEFAULT_DATASET, list_datasets, load
from prunebench.commands import argtypes
from prunebench.errors import ConfigError
from prunebench.limits import MAX_WIDTH_MULT, bounds
from prunebench.models import build_model, variant
from prunebench.train import Recipe, TrainResult, seed_everything, train
from prunebench.outputs import atomic_write_text, claim_dir
from prunebench.train.result import RESULT_FILE
from prunebench.train.speed import resolve_device
from prunebench.train.state import STATE_DIR, STATE_FILE, read_train_state
from prunebench.train.threads import thread_policy, use_threads

CONFIG_FILE = "config.json"


def add_arguments(parser: argparse.ArgumentParser, *, from_checkpoint: bool = False) -> None:
    """`from_checkpoint`: the options of `finetune`/`scratch`, whose architecture comes from a checkpoint."""
    parser.epilog = (
        "The run folder gets config.json, metrics.csv (one row per epoch), state/ (the resumable "
        "checkpoint, rewritten every epoch), best/ (best on the validation split), final/ and, last, "
        "result.json. Re-running the same command resumes an interrupted run and does not retrain a "
        "finished one; different settings on an existing run folder are refused."
    )
    if not from_checkpoint:
        model = parser.add_mutually_exclusive_group(required=True)
        model.add_argument("--arch", metavar="NAME", help="named architecture (see `prunebench arch --list`)")
        model.add_argument("--builder", metavar="MODULE:FUNCTION",
                           help="your own model: an importable function returning a fresh nn.Module (README: Prune your own model)")
        parser.add_argument("--kwargs", type=json.loads, default={}, metavar="JSON",
                            help="keyword arguments of --builder, as a JSON object (default: {})")
        parser.add_argument("--method", metavar="NAME",
                            help="train the large model the way this method needs: slimming (L1 on BN scales), sfp (soft filter pruning)")
        parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                            help="an option of --method that changes its training (slimming: lam; sfp: ratio, layers); repeatable")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, choices=list_datasets(), metavar="D",
                        help=f"data set: {', '.join(list_datasets())} (default: {DEFAULT_DATASET})")
    parser.add_argument("--epochs", type=argtypes.EPOCHS, required=True, metavar="E",
                        help=f"training epochs ({bounds('epochs')})")
    parser.add_argument("--lr", type=argtypes.POSITIVE, default=0.1, help="initial learning rate (default: 0.1)")
    parser.add_argument("--batch-size", type=argtypes.BATCH_SIZE, default=64, metavar="B",
                        help=f"training batch size ({bounds('batch_size')}; default: 64)")
    parser.add_argument("--wd", type=argtypes.NONNEG, default=1e-4, help="weight decay, on all parameters (default: 1e-4)")
    parser.add_argument("--momentum", type=argtypes.NONNEG, default=0.9, help="SGD momentum (default: 0.9)")
    parser.add_argument("--nesterov", action="store_true", help="use Nesterov momentum")
    parser.add_argument(
        "--milestones", default="0.5,0.75", metavar="LIST",
        help="LR x0.1 at these points: fractions of the run if they contain '.', else epochs; "
        "'none' for a constant LR (default: 0.5,0.75). A fraction that rounds down to epoch 0, or onto "
        "the epoch of an earlier one, is dropped, so a 1-epoch run trains at --lr throughout and a "
        "2-epoch run at --lr, then --lr x0.1; metrics.csv shows each epoch's LR",
    )
    parser.add_argument("--seed", type=argtypes.SEED, default=0,
                        help=f"seed of initialisation, data order and augmentation ({bounds('seed')}; default: 0)")
    parser.add_argument("--val-size", type=argtypes.COUNT, metavar="N",
                        help="validation images carved from the training set (default: per data set; 0 = none)")
    parser.add_argument("--train-subset", type=argtypes.COUNT, metavar="N", help="train on N class-balanced images only")
    if not from_checkpoint:
        parser.add_argument("--width-mult", type=argtypes.WIDTH_MULT, default=1.0, metavar="X",
                            help=f"scale every width by X (0 < X <= {MAX_WIDTH_MULT:g}; default: 1)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="auto = bf16 autocast + channels_last where the hardware supports bf16 (default: auto)")
    parser.add_argument("--compile", action="store_true",
                        help="wrap the model in torch.compile (for GPUs; on a CPU it costs more than it gains)")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    add_data_dir(parser)
    add_threads(parser)
    parser.add_argument("--out", metavar="DIR", help="run folder (default: runs/train/ARCH-DATASET-seedS)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--ddp", action="store_true",
                        help="data-parallel over the processes torchrun starts: torchrun --nproc_per_node K "
                        "-m prunebench.cli train ... --ddp (gloo on the CPU, nccl on GPUs; rank 0 writes --out)")


def parse_milestones(text: str, epochs: int) -> tuple[int, ...]:
    """'0.5,0.75' -> fractions of `epochs`; '80,120' -> epochs; 'none' or '' -> constant LR."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items or items == ["none"]:
        return ()
    try:
        if any("." in t for t in items):
            return Recipe.from_fractions(epochs, [float(t) for t in items], lr=1.0).milestones
        return tuple(int(t) for t in items)
    except ValueError:
        raise ConfigError(f"--milestones must be comma-separated numbers or 'none', got {text!r}") from None


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    return Recipe(
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, momentum=args.momentum,
        nesterov=args.nesterov, weight_decay=args.wd, milestones=parse_milestones(args.milestones, args.epochs),
        precision=args.precision, compile=args.compile,
    )


def check_config(out: Path, config: dict[str, Any]) -> None:
    """Refuse an existing run folder whose stored settings differ from `config`; nothing is written."""
    path = out / CONFIG_FILE
    if not path.exists():
        if (out / STATE_DIR).exists() or (out / RESULT_FILE).exists():
            raise ConfigError(f"{out} holds a run without {CONFIG_FILE}; use another --out")
        return
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: unreadable ({e})") from None
    stored, config = _flat(stored), _flat(config)
    changed = [k for k in sorted(set(stored) | set(config)) if stored.get(k) != config.get(k)]
    if changed:
        k = changed[0]
        raise ConfigError(
            f"{out} holds a run with different settings ({k}: {stored.get(k)!r} there, {config.get(k)!r} now"
            f"{f', and {len(changed) - 1} more' if len(changed) > 1 else ''}); use another --out"
        )


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    """Recipe fields at the top level, so a difference is reported as e.g. `lr`."""
    flat = {k: v for k, v in config.items() if k != "recipe"}
    flat.update(config.get("recipe") or {})
    return flat


def run(args: argparse.Namespace) -> int:
    if not args.ddp:
        return _run(args)
    from prunebench.train import distributed

    rank = distributed.init(args.device)  # one line if not under torchrun
    try:
        return _run(args, main=rank.main, barrier=rank.barrier)
    finally:
        distributed.shutdown()


def _run(args: argparse.Namespace, main: bool = True, barrier: Any = None) -> int:
    """One training run; under --ddp every rank runs it and `main` (rank 0) alone writes and prints."""
    recipe = recipe_from_args(args)
    label = args.arch or args.builder
    out = Path(args.out or f"runs/train/{label.replace(':', '-')}-{args.dataset}-seed{args.seed}")
    config = {
        "arch": label, "dataset": args.dataset, "width_mult": args.width_mult, "seed": args.seed,
        "val_size": args.val_size, "train_subset": args.train_subset, "recipe": recipe.to_dict(),
    }
    if args.method:  # only when given: the config of older run folders stays valid
        config["method"] = {"name": args.method, "options": sorted(args.option)}
    if args.builder:
        config["kwargs"] = args.kwargs
    check_config(out, config)
    splits = load(args.dataset, val_size=args.val_size, train_subset=args.train_subset, data_dir=args.data_dir)
    seed_everything(args.seed)
    model = build_model(user_spec(args, splits.info) if args.builder else variant(args.arch, splits.info, width_mult=args.width_mult))
    callbacks = sparsity_training(args.method, args.option, model) if args.method else []
    resolve_device(args.device)  # a bad --device fails before anything is written
    threads = thread_policy(args.threads)  # so does a bad --threads or $PRUNEBENCH_THREADS
    if main:
        prepare_run_folder(out, config, recipe)
    if barrier is not None:
        barrier()  # the other ranks start once rank 0 has claimed the folder
    with use_threads(threads):
        result = train(model, splits, recipe, out, seed=args.seed, device=args.device, callbacks=callbacks)
    if not main:
        return 0
    if args.json:
        print(json.dumps({"out": str(out), **result.to_dict()}, indent=1))
    else:
        print(summary(label, args.dataset, out, result))
    return 0


def user_spec(args: argparse.Namespace, info: Any) -> Any:
    """The builder spec of `--builder` (at the data set's classes, channels and input size)."""
    from prunebench.models import BuilderSpec

    if args.width_mult != 1.0:
        raise ConfigError("--width-mult scales zoo architectures; a --builder model takes its widths from --kwargs")
    if not isinstance(args.kwargs, dict):
        raise ConfigError(f"--kwargs must be a JSON object, got {args.kwargs!r}")
    return BuilderSpec(builder=args.builder, kwargs=args.kwargs, num_classes=info.num_classes,
                       in_channels=info.in_channels, input_size=info.input_size)  # fmt: skip


def prepare_run_folder(out: Path, config: dict[str, Any], recipe: Recipe) -> None:
    """Claim `out` and say whether the run resumes, is finished, or starts (writing its config)."""
    # the user's folder is refused untouched; a run folder from before markers has our config.json
    claim_dir(out, recognise=lambda d: (d / CONFIG_FILE).is_file())
    if (out / RESULT_FILE).exists():
        print(f"{out} already holds a finished run; not retrained", file=sys.stderr)
    elif (out / STATE_DIR / STATE_FILE).exists():
        done = read_train_state(out / STATE_DIR / STATE_FILE)["next_epoch"]  # a list or bogus types: one line
        print(f"resuming {out} after epoch {done} of {recipe.epochs}", file=sys.stderr)
    else:
        atomic_write_text(out / CONFIG_FILE, json.dumps(config, indent=1, sort_keys=True))


def _acc(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def summary(arch: str, dataset: str, out: Path, r: TrainResult) -> str:
    return "\n".join([
        f"{arch} on {dataset}: {r.epochs} epochs, {r.steps} steps, {r.wall_time_s:.0f} s (trained in {r.precision} on {r.device}; accuracies evaluated in fp32)",
        f"  final model:        val {_acc(r.final_val_acc)}  test {_acc(r.test_acc)}",
        f"  best on validation: val {_acc(r.best_val_acc)}  test {_acc(r.test_acc_best_val)}  (epoch {r.best_epoch})",
        f"  run folder: {out} (final/, best/, metrics.csv, result.json)",
    ])
