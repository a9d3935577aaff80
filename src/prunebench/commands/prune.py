"""`prunebench prune`: prune a checkpoint with a registered method into a new checkpoint folder."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

from torch import nn

from prunebench.commands.options import add_data_dir
from prunebench.commands import argtypes
from prunebench.limits import MAX_DEPTH, bounds, value_error
from prunebench.data import DEFAULT_DATASET, Splits, load
from prunebench.errors import CheckpointError, ConfigError
from prunebench.measure import count_flops, count_params, measure_latency
from prunebench.models import attached_spec
from prunebench.prune import get_method, list_methods
from prunebench.prune.base import same_value
from prunebench.prune.recalibrate import recalibrate_bn
from prunebench.train import evaluate, load_model
from prunebench.outputs import MARKER, MARKER_TEXT, OutputError, check_dir, foreign
from prunebench.train.checkpoint import (
    CHECKSUMS_FILE, MASKS_FILE, META_FILE, SPEC_FILE, WEIGHTS_FILE, model_files, write_dir,
)

INFO_FILE = "prune_info.json"
#: everything a `prune --out` folder holds; replacing it replaces all of them at once
OUT_FILES = (SPEC_FILE, WEIGHTS_FILE, MASKS_FILE, META_FILE, CHECKSUMS_FILE, INFO_FILE, MARKER)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "examples:\n"
        "  prunebench prune --list\n"
        "  prunebench prune --method l1norm --variant vgg16-a --checkpoint runs/vgg16/final --out runs/vgg16-a\n"
        "  prunebench prune --method slimming --ratio 0.4 --checkpoint runs/vgg19 --out runs/vgg19-slim --dataset cifar10"
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--list", action="store_true", help="list the registered methods and their named variants, then exit")
    parser.add_argument("--method", metavar="NAME", help="pruning method name (see --list for methods and options)")
    parser.add_argument(
        "--checkpoint", type=Path, metavar="DIR",
        help="checkpoint folder to prune (a training folder works too: its final/ checkpoint is used)",
    )
    parser.add_argument("--out", type=Path, metavar="DIR", help="checkpoint folder to write (spec, weights, masks, prune_info.json)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--variant", metavar="NAME", help="a named target architecture of the method (e.g. vgg16-a, resnet56-b)")
    target.add_argument(
        "--ratio", type=argtypes.NUMBER, metavar="P",
        help="sets the method's 'ratio' option, the fraction REMOVED, for every method with an amount: per layer "
        "(l1norm, thinet, regression, sfp), of all BN channels (slimming), of the conv weights (magnitude)",
    )
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="a method option; VALUE is read as JSON when it parses (0.1, true, [\"a\"]), else as text; repeatable",
    )
    parser.add_argument(
        "--dataset", metavar="NAME",
        help=f"also report accuracy before fine-tuning, as-is and BN-recalibrated (e.g. {DEFAULT_DATASET});"
        " methods that need data (ThiNet, regression) require it",
    )
    add_data_dir(parser)
    parser.add_argument("--val-size", type=argtypes.COUNT, default=None, metavar="N", help="validation images (default: the data set's)")
    parser.add_argument("--train-subset", type=argtypes.COUNT, default=None, metavar="N", help="use a class-balanced training subset")
    parser.add_argument(
        "--recal-batches", type=argtypes.REPEATS, default=50, metavar="N", help="training batches used for BN recalibration (default 50)"
    )
    parser.add_argument("--seed", type=argtypes.SEED, default=0, metavar="N",
                        help=f"seed passed to the method ({bounds('seed')}; default 0)")
    parser.add_argument("--force", action="store_true", help="replace an existing checkpoint in --out")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def parse_option(text: str) -> tuple[str, Any]:
    """`key=value` with a JSON value when it parses, else the raw text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--option expects KEY=VALUE, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return key, value
    except RecursionError:
        raise ConfigError(f"--option {key}: nested more than {MAX_DEPTH} levels deep") from None
    bad = value_error(parsed)
    if bad:
        where, why = bad
        raise ConfigError(f"--option {key}{'.' + where if where and where[0] != '[' else where}: {why}")
    return key, parsed


def raw_options(args: argparse.Namespace) -> dict[str, Any]:
    raw = dict(parse_option(o) for o in args.option)
    for key in ("variant", "ratio"):
        value = getattr(args, key)
        if value is None:
            continue
        if key in raw:
            raise ConfigError(f"--{key} and --option {key}=... both given")
        raw[key] = value
    return raw


def check_out(out: Path, force: bool) -> None:
    """Refuse, before any work and without writing, an --out that is a file, a folder of the user's,
    or a checkpoint (without --force); `--force` replaces a checkpoint folder holding nothing else."""
    check_dir(out, recognise=lambda d: (d / SPEC_FILE).is_file() and not foreign(d, OUT_FILES))
    if (out / SPEC_FILE).exists() and not force:
        raise CheckpointError(f"{out} already holds a checkpoint; pass --force to replace it")
    extra = foreign(out, OUT_FILES)
    if extra:
        raise OutputError(
            f"--out {out}: also holds {extra[0]}{f' and {len(extra) - 1} more' if len(extra) > 1 else ''}, "
            "which replacing the checkpoint would delete; nothing was written"
        )


def checkpoint_dir(path: Path) -> Path:
    """The checkpoint folder itself, or the final/ checkpoint of a training folder."""
    if not (path / SPEC_FILE).is_file() and (path / "final" / SPEC_FILE).is_file():
        return path / "final"
    return path


def measure(model: nn.Module, masks: dict[str, Any] | None) -> dict[str, Any]:
    params = count_params(model, masks)
    return {
        "params": params.total,
        "params_nonzero": params.nonzero,
        "flops": count_flops(model).flops,  # the model's rule: reference for the zoo, dispatch for user models
        "flops_sparse": count_flops(model, mode="reference", masks=masks).flops if masks else None,
        "latency_ms": measure_latency(model).median_ms,
        "widths": attached_spec(model).widths(),
    }


def accuracies(large: nn.Module, pruned: nn.Module, splits: Splits, recal_batches: int, seed: int) -> dict[str, Any]:
    """Accuracy of the large model, of the pruned one as-is and after BN recalibration."""
    split = "val" if len(splits.val_y) else "test"
    x, y = (splits.val_x, splits.val_y) if split == "val" else (splits.test_x, splits.test_y)
    recalibrated = recalibrate_bn(copy.deepcopy(pruned), splits, batches=recal_batches, seed=seed)
    return {
        "split": split,
        "before": evaluate(large, x, y, info=splits.info),
        "pruned": evaluate(pruned, x, y, info=splits.info),
        "pruned_recalibrated": evaluate(recalibrated, x, y, info=splits.info),
    }


def _default(f: dataclasses.Field[Any]) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def list_text() -> str:
    lines = []
    for name in list_methods():
        method = get_method(name)
        lines.append(f"{name:<11} {method.description}")
        lines.append(f"{'':<11} large training: {method.large_training_kind}; style: {method.style}")
        options = [f"{f.name}={_default(f)!r}" for f in dataclasses.fields(method.Options)]
        if options:
            lines.append(f"{'':<11} options: {', '.join(options)}")
        if method.aliases:  # old option names, still accepted and converted
            old = ", ".join(f"{a} (as {new}{'' if conv is same_value else ' = 1 - value'})"
                            for a, (new, conv) in method.aliases.items())  # fmt: skip
            lines.append(f"{'':<11} old names accepted: {old}")
        variants = method.variants()
        if variants:
            lines.append(f"{'':<11} variants: {', '.join(variants)}")
    return "\n".join(lines)


def summary_text(summary: dict[str, Any]) -> str:
    before, after = summary["before"], summary["after"]
    lines = [f"{summary['method']} on {summary['family']}: {summary['checkpoint']} -> {summary['out']}"]
    lines.append(f"{'':<14}{'before':>14}{'after':>14}{'after/before':>14}")
    for key, label in (("params", "params"), ("flops", "FLOPs"), ("latency_ms", "latency ms")):
        b, a = before[key], after[key]
        fmt = (lambda v: f"{v:,.3f}") if key == "latency_ms" else (lambda v: f"{v:,}")
        lines.append(f"{label:<14}{fmt(b):>14}{fmt(a):>14}{a / b:>14.3f}")
    if after["flops_sparse"] is not None:
        lines.append(f"{'sparse FLOPs':<14}{'':>14}{after['flops_sparse']:>14,}{after['flops_sparse'] / before['flops']:>14.3f}")
    acc = summary.get("accuracy")
    if acc:
        lines.append(
            f"accuracy ({acc['split']}): before {acc['before']:.4f}; pruned {acc['pruned']:.4f}; "
            f"pruned + BN recalibration {acc['pruned_recalibrated']:.4f}"
        )
    kept, sizes = summary["info"].get("kept_counts", {}), summary["info"].get("sizes", {})
    changed = [f"{g} {sizes[g]}->{k}" for g, k in kept.items() if g in sizes and k != sizes[g]]
    if changed:
        lines.append(f"pruned groups ({len(changed)}): " + ", ".join(changed))
    for note in summary["info"].get("guarded_layers", []):
        lines.append(f"note: {note} kept its min_channels (the global threshold would have emptied it)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.list:
        print(list_text())
        return 0
    missing = [f"--{n}" for n in ("method", "checkpoint", "out") if getattr(args, n) is None]
    if missing:
        raise ConfigError(f"{', '.join(missing)} required (or --list)")
    method = get_method(args.method)
    opts = method.parse_options(raw_options(args))
    ignored = sorted(set(raw_options(args)) & method.training_options)
    if ignored:  # accepted silently, it would suggest the checkpoint was trained with it
        raise ConfigError(f"--option {ignored[0]}: only changes {method.name}'s large-model training, which this "
                          f"checkpoint already had; train with `prunebench train --method {method.name} --option {ignored[0]}=...`")  # fmt: skip
    check_out(args.out, args.force)
    source = checkpoint_dir(args.checkpoint)
    large, large_masks, _ = load_model(source)
    splits = load(args.dataset, val_size=args.val_size, train_subset=args.train_subset, data_dir=args.data_dir) if args.dataset else None

    result = method.prune(copy.deepcopy(large), splits, opts, seed=args.seed)
    summary: dict[str, Any] = {
        "method": method.name,
        "options": dataclasses.asdict(opts),
        "seed": args.seed,
        "family": attached_spec(large).family,
        "checkpoint": str(source),
        "out": str(args.out),
        "before": measure(large, large_masks),
        "after": measure(result.model, result.masks),
        "kept": result.kept,
        "info": result.info,
    }
    if splits is not None:
        summary["dataset"] = args.dataset
        summary["accuracy"] = accuracies(large, result.model, splits, args.recal_batches, args.seed)
    files = model_files(result.model, result.masks, meta={"pruned_by": method.name, "source": str(source)})
    files[INFO_FILE] = json.dumps(summary, indent=1, sort_keys=True).encode()
    files[MARKER] = MARKER_TEXT.encode()
    write_dir(args.out, files)  # atomic: a failure above leaves --out untouched
    print(json.dumps(summary, indent=1, sort_keys=True) if args.json else summary_text(summary))
    return 0
