"""`prunebench arch`: a named architecture's widths, size, cost and Scratch-B budget."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any, NamedTuple

from prunebench.commands import argtypes
from prunebench.data import DEFAULT_DATASET, dataset_info, list_datasets
from prunebench.errors import ConfigError
from prunebench.measure import (
    FLOPS_RULES,
    Budget,
    BudgetPolicy,
    FlopCount,
    count_flops,
    count_params,
    measure_latency,
    scratch_b_budget,
    standard_schedule,
)
from prunebench.models import describe_variant, list_variants, variant


class Shape(NamedTuple):
    """What `variant` needs from a data set."""

    name: str
    num_classes: int
    in_channels: int
    input_size: int


class Schedule(NamedTuple):
    """The large-model schedule a Scratch-B budget was derived from."""

    epochs: int
    milestones: tuple[int, ...]
    budget: Budget


# ImageNet is measured, never loaded, so `data` need not know it.
IMAGENET = Shape("imagenet", 1000, 3, 224)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "FLOPs are per image. 'reference' is the paper's counting rule (multiply and add counted "
        "separately; BN, ReLU and pooling modules included) used for Scratch-B budgets; 'dispatch' is "
        "torch.utils.flop_counter, which sees functional ops but counts only conv/matmul (2 per MAC)."
    )
    parser.add_argument("name", nargs="?", help="architecture name (see --list)")
    parser.add_argument("--list", action="store_true", help="list every named architecture and exit")
    parser.add_argument(
        "--dataset", default=DEFAULT_DATASET,
        help=f"data set whose input shape and classes to build for: {', '.join(_datasets())} "
        f"(default: {DEFAULT_DATASET})",
    )
    parser.add_argument(
        "--base", metavar="NAME",
        help="the large model this one was pruned from: also print the FLOPs ratio and the Scratch-B budget",
    )
    parser.add_argument(
        "--epochs", type=argtypes.EPOCHS, metavar="E",
        help="large-model epochs behind the Scratch-B budget (default: the data set's standard recipe, "
        "160 epochs with decays at 50%% and 75%%, or ImageNet's 90 with a decay every 30 and a 2x cap)",
    )
    parser.add_argument("--batch-size", type=argtypes.BATCH_SIZE, default=1,
                        help="images per timed forward pass (default: 1)")
    parser.add_argument("--repeats", type=argtypes.REPEATS, default=20, help="timed forward passes, after 5 warm-ups (default: 20)")
    parser.add_argument(
        "--sfp-ratio", type=float, metavar="P",
        help="also print the Scratch-B budget of Soft Filter Pruning of NAME with P of every conv's filters "
        "zeroed (the E7 presets: 0.3), by both FLOPs rules: soft_zeroed (the reference's count of the "
        "soft-zeroed full model) and pruned (the hard-pruned model); 200-epoch SFP base, or --epochs",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def run(args: argparse.Namespace) -> int:
    if args.list:
        _print_list(args.json)
        return 0
    if not args.name:
        raise ConfigError("name an architecture, or use --list to see them")
    if args.epochs is not None and not (args.base or args.sfp_ratio is not None):
        raise ConfigError("--epochs sets the Scratch-B base and needs --base or --sfp-ratio")
    shape = _dataset_shape(args.dataset)
    result = describe(args.name, shape, batch_size=args.batch_size, repeats=args.repeats)
    schedule = None
    if args.base:
        base_result, schedule = budget(args.base, shape, result["flops"]["flops"], args.epochs)
        result.update(base_result)
    text = "" if args.json else _text(result, args.base, schedule)
    if args.sfp_ratio is not None:
        result["sfp"] = sfp_budgets(args.name, shape, args.sfp_ratio, args.epochs)
        text += "\n" + _sfp_text(result["sfp"])
    print(json.dumps(result, indent=2) if args.json else text)
    return 0


def sfp_budgets(name: str, shape: Shape, ratio: float, epochs: int | None) -> dict[str, Any]:
    """Scratch-B of SFP on `name` at `ratio` (fraction of filters zeroed) under each FLOPs rule, after the
    SFP recipe (200 epochs, warm-up kept), as the E7 presets plan it."""
    from prunebench.experiment.planned import planned_budget
    from prunebench.prune.sfp import SFP_BASE_EPOCHS, sfp_recipe

    recipe = sfp_recipe(epochs or SFP_BASE_EPOCHS)
    large = variant(name, shape).build()
    out: dict[str, Any] = {"ratio": ratio, "base_epochs": recipe.epochs, "base_milestones": list(recipe.milestones)}
    for rule in FLOPS_RULES:
        policy = BudgetPolicy(base_epochs=recipe.epochs, fixed_first_epochs=1, flops_rule=rule)
        b = planned_budget(large, "sfp", {"ratio": ratio}, recipe, policy)
        assert b is not None  # SFP's counts never depend on the weights
        out[rule] = {"flops_ratio": b.ratio, "scratch_b_epochs": b.epochs, "scratch_b_milestones": list(b.milestones)}
    return out


def _sfp_text(sfp: dict[str, Any]) -> str:
    lines = [f"SFP at ratio {sfp['ratio']:g} (from {sfp['base_epochs']} epochs, LR changes at "
             f"{', '.join(map(str, sfp['base_milestones']))})"]  # fmt: skip
    for rule, label in (("soft_zeroed", "the reference's rule: soft-zeroed full model, sparse"),
                        ("pruned", "hard-pruned model")):  # fmt: skip
        b = sfp[rule]
        lines.append(f"  Scratch-B        {b['scratch_b_epochs']} epochs, LR changes at "
                     f"{', '.join(map(str, b['scratch_b_milestones']))}; FLOPs ratio {b['flops_ratio']:.4f} ({label})")  # fmt: skip
    return "\n".join(lines)


def describe(name: str, shape: Shape, *, batch_size: int, repeats: int) -> dict[str, Any]:
    """Widths, parameters, both FLOPs counts and CPU latency of `name` built for `shape`."""
    spec = variant(name, shape)
    model = spec.build()
    lat = measure_latency(model, batch_size=batch_size, repeats=repeats)
    return {
        "name": name,
        "dataset": shape.name,
        "params": dataclasses.asdict(count_params(model)),
        "flops": _flops_dict(count_flops(model)),
        "flops_dispatch": _flops_dict(count_flops(model, mode="dispatch")),
        "latency_ms": {
            "median": lat.median_ms, "p10": lat.p10_ms, "p90": lat.p90_ms, "iqr": lat.iqr_ms, "noisy": lat.noisy,
            "blocks": lat.blocks, "batch_size": lat.batch_size, "device": lat.device, "threads": lat.threads,
            "cell": lat.cell(),  # median ± IQR, `noisy` when flagged: as the report's tables say it
        },
        "widths": spec.widths(),
    }


def budget(base: str, shape: Shape, flops: int, epochs: int | None) -> tuple[dict[str, Any], Schedule]:
    """The base model's size and the Scratch-B budget of a model with `flops` reference FLOPs."""
    model = variant(base, shape).build()
    base_flops = count_flops(model)
    base_epochs, milestones, policy = standard_schedule(shape.name, epochs)
    ratio = base_flops.flops / flops
    if ratio < 1:
        raise ConfigError(f"--base {base} has fewer FLOPs than the model (ratio {ratio:.4f}); swap the two names")
    b = scratch_b_budget(base_epochs, milestones, ratio, policy)
    return {
        "base_params": dataclasses.asdict(count_params(model)),
        "base_flops": _flops_dict(base_flops),
        "flops_ratio": b.ratio,
        "scratch_b_epochs": b.epochs,
        "scratch_b_milestones": list(b.milestones),
    }, Schedule(base_epochs, milestones, b)


def _datasets() -> list[str]:
    names = list_datasets()
    return names if IMAGENET.name in names else [*names, IMAGENET.name]


def _dataset_shape(name: str) -> Shape:
    if name == IMAGENET.name and name not in list_datasets():
        return IMAGENET
    info = dataset_info(name)
    return Shape(info.name, info.num_classes, info.in_channels, info.input_size)


def _flops_dict(fc: FlopCount) -> dict[str, Any]:
    d = dataclasses.asdict(fc)
    d["input_shape"] = list(fc.input_shape)
    return d


def _print_list(as_json: bool) -> None:
    names = list_variants()
    if as_json:
        print(json.dumps({n: describe_variant(n) for n in names}, indent=2))
        return
    width = max(map(len, names))
    for n in names:
        print(f"{n:<{width}}  {describe_variant(n)}")


# -- text output -----------------------------------------------------------------------


def _text(r: dict[str, Any], base: str | None, schedule: Schedule | None) -> str:
    shape = "×".join(map(str, r["flops"]["input_shape"]))
    lat = r["latency_ms"]
    lines = [
        f"{r['name']} on {r['dataset']} ({shape})",
        f"  widths           {' '.join(map(str, r['widths']))}",
        f"  params           {_params(r['params'])}",
        f"  FLOPs            {_flops(r['flops'])}",
        f"  FLOPs dispatch   {_flops(r['flops_dispatch'])}",
        f"  latency          {lat['cell']} over {lat['blocks']} blocks; "
        f"batch {lat['batch_size']}, {lat['device']}, {lat['threads']} threads",
    ]
    if base and schedule:
        b = schedule.budget
        cap = f"cap {b.policy.cap:g}x{' (applied)' if b.capped else ''}" if b.policy.cap else "no cap"
        lines += [
            f"base {base}",
            f"  params           {_params(r['base_params'])}",
            f"  FLOPs            {_flops(r['base_flops'])}",
            f"  FLOPs ratio      {b.ratio:.4f} (reference mode)",
            f"  Scratch-B        {b.epochs} epochs, LR decays at {', '.join(map(str, b.milestones)) or 'none'} "
            f"(from {schedule.epochs} epochs decaying at {', '.join(map(str, schedule.milestones)) or 'none'}; "
            f"{b.policy.kind} policy, {b.policy.milestone_rule} milestones, {cap})",
        ]
    return "\n".join(lines)


def _params(p: dict[str, int]) -> str:
    return f"{p['total']:,} total, {p['nonzero']:,} non-zero, {p['prunable']:,} prunable (conv+linear weights)"


def _flops(f: dict[str, Any]) -> str:
    return (f"{f['flops']:,} FLOPs, {f['macs']:,} conv/linear MACs "
            f"[{f['mode']}{', sparse' if f['sparse'] else ''}, counter {f['counter_version']}]")
