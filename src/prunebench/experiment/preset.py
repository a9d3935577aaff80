"""Experiment presets: a TOML file validated into typed, frozen config objects.

Every value is checked against the schema below; an unknown key or a wrong
type is a one-line `ConfigError` naming the file and the key path
(`presets/x.toml: recipes.large.epochs: expected an integer, got "four"`).
Method options are checked by the method itself (`PruneMethod.parse_options`) and
recipes by the trainer's `Recipe`; their messages get the same file and key prefix.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from prunebench.errors import ConfigError, PrunebenchError
from prunebench.limits import MAX_SEED, MAX_SEEDS, MAX_WIDTH_MULT, int_error, value_error

#: Arms a preset can switch on; the order is the report's column order.
ARMS = (
    "unpruned",
    "unpruned_plain",  # for methods that train the large model specially (slimming, SFP, SSS)
    "pruned_no_ft",
    "pruned_no_ft_bnrecal",
    "finetuned",
    # retraining-budget and selection baselines (experiment/baselines.py), from the pruned model
    "finetune_long",  # fine-tuned for the Scratch-E epochs
    "lr_rewind",  # retrained with the large recipe's LR schedule from arms.rewind_epoch
    "weight_rewind",  # surviving weights reset to epoch rewind_epoch of the large run, then as lr_rewind
    "random_layerwise",  # random channels/weights at the method's per-layer amounts, fine-tuned
    "scratch_e",
    "scratch_b",
    "uniform_scratch",
    "winning_ticket",
    "random_ticket",
    # architecture-search baselines (docs/methods.md §10 Pruning as architecture search), trained from scratch only
    "uniform_sparse_scratch",  # mask methods: uniform density equal to the pruned model's
    "guided_scratch",  # structured methods: per-stage average widths of the pruned model
    "guided_sparse_scratch",  # mask methods: per-stage density and 3x3 keep maps
    "transferred_guided_scratch",  # patterns of another preset's pruned model (not runnable yet)
)

#: The default soft-pruning LR when SFP starts from a pretrained model (docs/protocol.md §4.4 SFP recipe).
PRETRAINED_SOFT_LR = 0.001
#: The largest `group_training` size: more models than this trained as one are not a small-net group.
MAX_GROUP = 64

@dataclass(frozen=True)
class DataConfig:
    name: str
    val_size: int = 0
    train_subset: int | None = None
    test_subset: int | None = None  # a class-balanced slice of the test set (quick CPU runs only)
    split_seed: int = 0
    normalisation: str | None = None  # a name from `prunebench.data.NORMS`; None = the default
    classes: int | None = None  # image folders: the first N classes (quick runs)
    input_size: int | None = None  # image folders: the crop (224 for ImageNet; e.g. 56 for a 64-px toy)
    crop_pad: int | None = None  # training augmentation: the random crop's zero padding (None: the data set's)
    flip: bool | None = None  # training augmentation: random horizontal flips (None: the data set's)

    def fingerprint(self) -> dict[str, Any]:
        """What identifies the data before it is loaded (the split hash joins it at run time).
        The image-folder and augmentation keys join only when set, so older identities stay valid."""
        fp = dataclasses.asdict(self)
        for key in ("classes", "input_size", "crop_pad", "flip"):
            if fp[key] is None:
                del fp[key]
        return fp


@dataclass(frozen=True)
class ModelConfig:
    variant: str
    width_mult: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)
    builder: str | None = None  # a user model, "pkg.module:function" (models/builder.py), instead of a variant
    kwargs: dict[str, Any] = field(default_factory=dict)  # the builder's keyword arguments (JSON values)

    @property
    def label(self) -> str:
        return self.builder or f"{self.variant} x{self.width_mult:g}"


@dataclass(frozen=True)
class MethodConfig:
    name: str
    label: str
    options: dict[str, Any]
    parsed: Any = field(compare=False, repr=False)
    # one point of a trade-off curve (`amounts = [...]` in the preset): the entry's own label and amount
    curve: str | None = None
    amount: float | None = None


@dataclass(frozen=True)
class RecipeConfig:
    """A training recipe; milestones are resolved to epochs at load time."""

    epochs: int
    lr: float
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    lr_multipliers: tuple[float, ...] | None = None
    batch_size: int = 64
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    precision: str = "fp32"
    nproc: int = 1  # data-parallel processes for this recipe's stages (torchrun); not inherited

    def to_dict(self) -> dict[str, Any]:
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        if self.nproc == 1:  # the default: left out, as the trainer's Recipe.to_dict does
            del d["nproc"]
        return d


@dataclass(frozen=True)
class BudgetConfig:
    kind: str = "paper"
    cap: float | None = None
    base_epochs: int | None = None  # None = the large recipe's epochs
    fixed_first_epochs: int = 0
    milestone_rule: str = "fraction"  # see `prunebench.measure.BudgetPolicy`
    flops_rule: str = "pruned"  # "soft_zeroed": the SFP reference's count (`BudgetPolicy.flops_rule`)


@dataclass(frozen=True)
class CompareConfig:
    """How arms are judged against fine-tuned: the equivalence margin, in accuracy points."""

    margin: float = 0.5


@dataclass(frozen=True)
class TransferConfig:
    """Where transferred-guided patterns come from: a method label of another (source) preset."""

    source: str
    method: str


@dataclass(frozen=True)
class Preset:
    name: str
    file: str
    description: str
    data: DataConfig
    model: ModelConfig
    methods: tuple[MethodConfig, ...]
    arms: tuple[str, ...]
    large: RecipeConfig
    finetune: RecipeConfig
    lottery_lrs: tuple[float, ...]
    scratch_reinit: str
    budget: BudgetConfig
    seeds: tuple[int, ...]
    notes: tuple[str, ...] = ()
    log_test_every_epoch: bool = True  # fills the reference-compatible best-on-test column
    weight_histograms: bool = False  # the report plots conv weight distributions (E14)
    # training stages that train as one group: "auto" (experiment/grouping.py decides), "off", or up to K
    group_training: str | int = "auto"
    unsupported: str | None = None  # a documented stub: validates, but does not run
    # soft-pruning run of a method trained from a pretrained model (SFP `pretrained = true`);
    # None = the large recipe at `PRETRAINED_SOFT_LR`
    soft_from_pretrained: RecipeConfig | None = None
    transfer: TransferConfig | None = None
    rewind_epoch: int = 0  # arms.rewind_epoch: where LR / weight rewinding start in the large schedule
    compare: CompareConfig = CompareConfig()
    detection: dict[str, Any] | None = None  # E8's [detection] table (experiment/detection_stages.py)

    def with_seeds(self, n: int) -> Preset:
        """The first `n` seeds, extended with consecutive integers when `n` exceeds the list."""
        if not 1 <= n <= MAX_SEEDS:
            raise ConfigError(f"--seeds must be in [1, {MAX_SEEDS}], got {n}")
        seeds = list(self.seeds[:n])
        while len(seeds) < n:
            seeds.append(max(seeds, default=-1) + 1)
        if seeds[-1] > MAX_SEED:
            raise ConfigError(f"--seeds {n}: the added seeds would pass the largest seed, {MAX_SEED}")
        return dataclasses.replace(self, seeds=tuple(seeds))


# -- value checkers -------------------------------------------------------------------

Check = Callable[[Any, str], Any]
_REQUIRED = object()
#: Preset names: no separators, no "..", nothing a shell or file system treats specially.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
#: A preset file larger than this is not a preset (the largest shipped one is a few KiB).
MAX_PRESET_BYTES = 1 << 20


def _show(v: Any) -> str:
    try:
        return json.dumps(v)
    except TypeError:
        return repr(v)


class _Reader:
    """Validates one file's raw TOML; every error names the file and the key path."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, path: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.file}: {path}: {msg}")

    def table(self, raw: Any, path: str, keys: set[str]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise self.fail(path, f"expected a table, got {_show(raw)}")
        unknown = sorted(set(raw) - keys)
        if unknown:
            where = f"{path}.{unknown[0]}" if path else unknown[0]
            raise self.fail(where, f"unknown key; known: {', '.join(sorted(keys))}")
        return raw

    def get(self, raw: dict[str, Any], key: str, path: str, check: Check, default: Any = _REQUIRED) -> Any:
        where = f"{path}.{key}" if path else key
        if key not in raw:
            if default is _REQUIRED:
                raise self.fail(where, "missing required key")
            return default
        return check(raw[key], where)

    # checkers: (value, path) -> value
    def raw(self, v: Any, path: str) -> Any:
        return v

    def any_table(self, v: Any, path: str) -> dict[str, Any]:
        if not isinstance(v, dict):
            raise self.fail(path, f"expected a table, got {_show(v)}")
        return v

    def int_(self, v: Any, path: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(path, f"expected an integer, got {_show(v)}")
        return v

    def nonneg_int(self, v: Any, path: str) -> int:
        v = self.int_(v, path)
        if v < 0:
            raise self.fail(path, f"expected a non-negative integer, got {v}")
        return v

    def pos_int(self, v: Any, path: str) -> int:
        v = self.int_(v, path)
        if v < 1:
            raise self.fail(path, f"expected a positive integer, got {v}")
        return v

    def bounded(self, kind: str) -> Check:
        """An integer within `prunebench.limits.INT_KINDS[kind]` (seeds, epochs, batch sizes)."""

        def check(v: Any, path: str) -> int:
            why = int_error(self.int_(v, path), kind)
            if why:
                raise self.fail(path, why)
            return int(v)

        return check

    def name_(self, v: Any, path: str) -> str:
        """A name that is also a safe folder name: it decides `runs/<name>` when --out is omitted."""
        v = self.str_(v, path)
        if not _SAFE_NAME.fullmatch(v) or v.strip(".") == "":
            raise self.fail(
                path, f"{_show(v)} cannot be a folder name; use letters, digits, '.', '_', '+' and '-' "
                "(first a letter or digit, at most 100 characters)"
            )  # fmt: skip
        return v

    def num(self, v: Any, path: str) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.fail(path, f"expected a number, got {_show(v)}")
        return float(v)

    def pos_num(self, v: Any, path: str) -> float:
        v = self.num(v, path)
        if v <= 0:
            raise self.fail(path, f"expected a positive number, got {v}")
        return v

    def bool_(self, v: Any, path: str) -> bool:
        if not isinstance(v, bool):
            raise self.fail(path, f"expected true or false, got {_show(v)}")
        return v

    def str_(self, v: Any, path: str) -> str:
        if not isinstance(v, str) or not v:
            raise self.fail(path, f"expected a non-empty string, got {_show(v)}")
        return v

    def choice(self, *values: str) -> Check:
        def check(v: Any, path: str) -> str:
            if v not in values:
                raise self.fail(path, f"expected one of {', '.join(values)}, got {_show(v)}")
            return v

        return check

    def list_of(self, item: Check, *, nonempty: bool = False) -> Check:
        def check(v: Any, path: str) -> tuple[Any, ...]:
            if not isinstance(v, list):
                raise self.fail(path, f"expected a list, got {_show(v)}")
            if nonempty and not v:
                raise self.fail(path, "expected a non-empty list")
            return tuple(item(x, f"{path}[{i}]") for i, x in enumerate(v))

        return check


# -- sections ---------------------------------------------------------------------


def _data(r: _Reader, raw: Any) -> DataConfig:
    keys = {"name", "val_size", "train_subset", "test_subset", "split_seed", "normalisation", "classes", "input_size",
            "crop_pad", "flip"}
    t = r.table(raw, "data", keys)
    return DataConfig(
        name=r.get(t, "name", "data", r.str_),
        val_size=r.get(t, "val_size", "data", r.nonneg_int, 0),
        train_subset=r.get(t, "train_subset", "data", r.pos_int, None),
        test_subset=r.get(t, "test_subset", "data", r.pos_int, None),
        split_seed=r.get(t, "split_seed", "data", r.bounded("seed"), 0),
        normalisation=r.get(t, "normalisation", "data", r.str_, None),
        classes=r.get(t, "classes", "data", r.pos_int, None),
        input_size=r.get(t, "input_size", "data", r.pos_int, None),
        crop_pad=r.get(t, "crop_pad", "data", r.nonneg_int, None),
        flip=r.get(t, "flip", "data", r.bool_, None),
    )


def _model(r: _Reader, raw: Any) -> ModelConfig:
    t = r.table(raw, "model", {"variant", "width_mult", "options", "builder", "kwargs"})
    if "builder" in t:  # a user model: the builder and its JSON kwargs, nothing a zoo variant takes
        for key in ("variant", "width_mult", "options"):
            if key in t:
                raise r.fail(f"model.{key}", "a model given by `builder` takes only `kwargs` besides it")
        return ModelConfig(
            variant="", builder=r.get(t, "builder", "model", r.str_),
            kwargs=dict(r.get(t, "kwargs", "model", r.any_table, {})),
        )  # fmt: skip
    if "kwargs" in t:
        raise r.fail("model.kwargs", "kwargs go with `builder` (a user model); a zoo variant takes `options`")
    return ModelConfig(
        variant=r.get(t, "variant", "model", r.str_),
        width_mult=r.get(t, "width_mult", "model", _width_mult(r), 1.0),
        options=dict(r.get(t, "options", "model", r.any_table, {})),
    )


#: what a user model (`[model] builder`) can run: methods that prune through the dependency graph
#: (prune/depgraph.py) and the arms that need only the pruned model and its record
USER_MODEL_METHODS = ("l1norm", "slimming", "magnitude", "sfp")
USER_MODEL_ARMS = (
    "unpruned", "unpruned_plain", "pruned_no_ft", "pruned_no_ft_bnrecal", "finetuned", "scratch_e", "scratch_b", "uniform_scratch",
)  # fmt: skip


def _check_user_model(r: _Reader, arms: tuple[str, ...], methods: Any) -> None:
    bad = [a for a in arms if a not in USER_MODEL_ARMS]
    if bad:
        raise r.fail(f"arms.{bad[0]}", f"not available for a user model (builder); available: {', '.join(USER_MODEL_ARMS)}")
    for i, m in enumerate(methods if isinstance(methods, list) else []):
        name = m.get("name") if isinstance(m, dict) else None
        if isinstance(name, str) and name not in USER_MODEL_METHODS:
            raise r.fail(f"methods[{i}].name", f"{name!r} cannot prune a user model (builder); use one of: {', '.join(USER_MODEL_METHODS)}")


def _recipe(r: _Reader, raw: Any, path: str, inherit: RecipeConfig | None = None) -> RecipeConfig:
    keys = {
        "epochs", "lr", "milestones", "milestone_fractions", "gamma", "lr_multipliers",
        "batch_size", "momentum", "nesterov", "weight_decay", "precision", "nproc",
    }  # fmt: skip
    t = r.table(raw, path, keys)
    base = inherit or RecipeConfig(epochs=1, lr=0.1)
    epochs = r.get(t, "epochs", path, r.bounded("epochs"))
    if "milestones" in t and "milestone_fractions" in t:
        raise r.fail(f"{path}.milestones", "give milestones or milestone_fractions, not both")
    milestones: tuple[int, ...] = r.get(t, "milestones", path, r.list_of(r.pos_int), ())
    if "milestone_fractions" in t:

        def fraction(v: Any, p: str) -> float:
            f = r.num(v, p)
            if not 0 < f < 1:
                raise r.fail(p, f"expected a fraction in (0, 1), got {f}")
            return f

        fractions = r.get(t, "milestone_fractions", path, r.list_of(fraction))
        from prunebench.train.recipe import fraction_milestones  # a short run drops milestones at epoch 0

        kept = fraction_milestones(epochs, fractions)
        milestones = tuple(kept.values())
    if list(milestones) != sorted(milestones):
        raise r.fail(f"{path}.milestones", f"must be increasing, got {list(milestones)}")
    multipliers = r.get(t, "lr_multipliers", path, r.list_of(r.pos_num), None)
    wanted = len(fractions) if "milestone_fractions" in t else len(milestones)
    if multipliers is not None and len(multipliers) != wanted:
        raise r.fail(f"{path}.lr_multipliers", f"expected {wanted} values (one per milestone), got {len(multipliers)}")
    if multipliers is not None and "milestone_fractions" in t:
        multipliers = tuple(multipliers[i] for i in kept)
    recipe = RecipeConfig(
        epochs=epochs,
        lr=r.get(t, "lr", path, r.pos_num),
        milestones=milestones,
        gamma=r.get(t, "gamma", path, r.pos_num, base.gamma),
        lr_multipliers=multipliers,
        batch_size=r.get(t, "batch_size", path, r.bounded("batch_size"), base.batch_size),
        momentum=r.get(t, "momentum", path, r.num, base.momentum),
        nesterov=r.get(t, "nesterov", path, r.bool_, base.nesterov),
        weight_decay=r.get(t, "weight_decay", path, r.num, base.weight_decay),
        precision=r.get(t, "precision", path, r.str_, base.precision),
        nproc=r.get(t, "nproc", path, r.pos_int, 1),
    )
    from prunebench.train import Recipe  # the trainer's own checks (momentum range, nesterov, ...)

    try:
        Recipe.from_dict(recipe.to_dict())
    except PrunebenchError as e:
        raise r.fail(path, str(e)) from None
    return recipe


def _methods(r: _Reader, raw: Any, check_options: bool) -> tuple[MethodConfig, ...]:
    items = r.list_of(r.raw, nonempty=True)(raw, "methods")
    out: list[MethodConfig] = []
    for i, item in enumerate(items):
        path = f"methods[{i}]"
        t = r.table(item, path, {"name", "label", "options", "amounts", "amount_option"})
        name = r.get(t, "name", path, r.str_)
        options = r.get(t, "options", path, r.any_table, {})
        label = r.get(t, "label", path, r.str_, name)
        if "amounts" in t:  # a trade-off curve: one method entry per amount
            out += _curve_entries(r, t, path, name, label, dict(options), check_options)
            continue
        if "amount_option" in t:
            raise r.fail(f"{path}.amount_option", "goes with amounts = [...]")
        parsed = _parse_options(r, name, dict(options), path) if check_options else None
        out.append(MethodConfig(name=name, label=label, options=dict(options), parsed=parsed))
    labels = [m.label for m in out]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise r.fail("methods", f"duplicate label {dup[0]!r}; give each entry a distinct label")
    return tuple(out)


def _parse_options(r: _Reader, name: str, options: dict[str, Any], path: str) -> Any:
    from prunebench.prune import get_method  # the experiment layer sits above prune

    try:
        method = get_method(name)
    except PrunebenchError as e:
        raise r.fail(f"{path}.name", str(e)) from None
    known = {f.name for f in dataclasses.fields(method.Options)} | set(method.aliases)  # old names accepted
    for key in options:  # name the offending key in the path; the method checks the values
        if key not in known:
            raise r.fail(f"{path}.options.{key}", f"unknown option of {name!r}; known: {', '.join(sorted(known)) or 'none'}")
    try:
        return method.parse_options(options)
    except PrunebenchError as e:
        raise r.fail(f"{path}.options", str(e)) from None


def _arms(r: _Reader, raw: Any) -> tuple[tuple[str, ...], str]:
    t = r.table(raw, "arms", set(ARMS) | {"scratch_reinit", "rewind_epoch"})
    on = tuple(a for a in ARMS if r.get(t, a, "arms", r.bool_, False))
    if not on:
        raise r.fail("arms", "switch on at least one arm")
    reinit = r.get(t, "scratch_reinit", "arms", r.choice("sparse", "dense"), "sparse")
    return on, reinit


def _budget(r: _Reader, raw: Any) -> BudgetConfig:
    t = r.table(raw, "budget", {"kind", "cap", "base_epochs", "fixed_first_epochs", "milestone_rule", "flops_rule"})
    return BudgetConfig(
        kind=r.get(t, "kind", "budget", r.choice("paper", "incl_finetune"), "paper"),
        cap=r.get(t, "cap", "budget", r.pos_num, None),
        base_epochs=r.get(t, "base_epochs", "budget", r.bounded("epochs"), None),
        fixed_first_epochs=r.get(t, "fixed_first_epochs", "budget", r.bounded("count"), 0),
        milestone_rule=r.get(t, "milestone_rule", "budget", r.choice("fraction", "step", "scale"), "fraction"),
        flops_rule=r.get(t, "flops_rule", "budget", r.choice("pruned", "soft_zeroed"), "pruned"),
    )


def _curve_entries(
    r: _Reader, t: dict[str, Any], path: str, name: str, label: str, options: dict[str, Any], check: bool
) -> list[MethodConfig]:
    """`amounts = [...]`: one entry `<label>@<amount>` per amount, the amount set as the method's
    `amount_option` (default: its `ratio`, else its `percent` option)."""
    amounts = r.get(t, "amounts", path, r.list_of(r.pos_num, nonempty=True))
    key = r.get(t, "amount_option", path, r.str_, None)
    if key is None:
        known = _option_names(r, name, path) if check else {"ratio"}
        key = next((k for k in ("ratio", "percent") if k in known), None)
        if key is None:
            raise r.fail(f"{path}.amount_option", f"method {name!r} has no ratio or percent option; name the option the amounts set")
    if key in options:
        raise r.fail(f"{path}.options.{key}", "the amounts set this option; give it in amounts only")
    if len(set(amounts)) != len(amounts):
        raise r.fail(f"{path}.amounts", f"duplicate amounts in {list(amounts)}")
    out = []
    for i, amount in enumerate(amounts):
        opts = {**options, key: amount}
        parsed = _parse_options(r, name, opts, f"{path}.amounts[{i}]") if check else None
        out.append(MethodConfig(name, f"{label}@{amount:g}", opts, parsed, curve=label, amount=amount))
    return out


def _option_names(r: _Reader, name: str, path: str) -> set[str]:
    from prunebench.prune import get_method

    try:
        return {f.name for f in dataclasses.fields(get_method(name).Options)}
    except PrunebenchError as e:
        raise r.fail(f"{path}.name", str(e)) from None


def _compare(r: _Reader, raw: Any) -> CompareConfig:
    t = r.table(raw, "compare", {"margin"})
    return CompareConfig(margin=r.get(t, "margin", "compare", r.pos_num, CompareConfig.margin))


def _rewind_epoch(r: _Reader, arms: dict[str, Any], large: RecipeConfig) -> int:
    epoch = r.get(arms, "rewind_epoch", "arms", r.nonneg_int, 0)
    if epoch >= large.epochs:
        raise r.fail("arms.rewind_epoch", f"must be below recipes.large.epochs ({large.epochs}), got {epoch}")
    return epoch


def _width_mult(r: _Reader) -> Check:
    def check(v: Any, path: str) -> float:
        f = r.pos_num(v, path)
        if f > MAX_WIDTH_MULT:
            raise r.fail(path, f"must be at most {MAX_WIDTH_MULT:g}, got {f:g}")
        return f

    return check


def _seeds(r: _Reader, t: dict[str, Any]) -> tuple[int, ...]:
    seeds: tuple[int, ...] = r.get(t, "seeds", "", r.list_of(r.bounded("seed"), nonempty=True))
    if len(seeds) > MAX_SEEDS:
        raise r.fail("seeds", f"at most {MAX_SEEDS} seeds, got {len(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise r.fail("seeds", f"seeds must be distinct, got {list(seeds)[:10]}")
    return seeds


def _group_training(r: _Reader, v: Any, path: str) -> str | int:
    if v in ("auto", "off") or (type(v) is int and 1 <= v <= MAX_GROUP):
        return v
    raise r.fail(path, f'expected "auto", "off" or a group size from 1 to {MAX_GROUP}, got {_show(v)}')


def _transfer(r: _Reader, raw: Any) -> TransferConfig | None:
    if raw is None:
        return None
    t = r.table(raw, "transfer", {"source", "method"})
    return TransferConfig(source=r.get(t, "source", "transfer", r.str_), method=r.get(t, "method", "transfer", r.str_))


def parse_preset(raw: dict[str, Any], file: str) -> Preset:
    """Validate a TOML document already read into `raw`; `file` labels the errors."""
    r = _Reader(file)
    bad = value_error(raw)  # NaN/inf, integers beyond 64 bits, absurd nesting: anywhere, options included
    if bad:
        raise r.fail(*bad)
    top = {"name", "description", "notes", "unsupported", "log_test_every_epoch", "weight_histograms", "group_training", "seeds", "data", "model", "methods", "arms", "recipes", "budget", "transfer", "compare", "detection"}
    t = r.table(raw, "", top)
    unsupported = r.get(t, "unsupported", "", r.str_, None)
    recipes = r.table(r.get(t, "recipes", "", r.raw), "recipes", {"large", "finetune", "lottery", "soft_from_pretrained"})
    large = _recipe(r, r.get(recipes, "large", "recipes", r.raw), "recipes.large")
    finetune = _recipe(r, r.get(recipes, "finetune", "recipes", r.raw), "recipes.finetune", inherit=large)
    lottery = r.table(r.get(recipes, "lottery", "recipes", r.raw, {}), "recipes.lottery", {"lrs"})
    soft = recipes.get("soft_from_pretrained")
    soft_recipe = None if soft is None else _recipe(r, soft, "recipes.soft_from_pretrained", inherit=large)
    arms, reinit = _arms(r, r.get(t, "arms", "", r.raw))
    transfer = _transfer(r, t.get("transfer"))
    model = _model(r, r.get(t, "model", "", r.raw))
    if model.builder is not None:
        _check_user_model(r, arms, t.get("methods"))
    if ("transferred_guided_scratch" in arms) != (transfer is not None):
        raise r.fail("transfer", "the transferred_guided_scratch arm and a [transfer] table go together")
    return Preset(
        name=r.get(t, "name", "", r.name_),
        file=file,
        description=r.get(t, "description", "", r.str_, ""),
        data=_data(r, r.get(t, "data", "", r.raw)),
        model=model,
        # stubs name methods that may not be implemented yet: check names only at run time
        methods=_methods(r, r.get(t, "methods", "", r.raw), check_options=unsupported is None),
        arms=arms,
        large=large,
        finetune=finetune,
        lottery_lrs=r.get(lottery, "lrs", "recipes.lottery", r.list_of(r.pos_num, nonempty=True), (0.1, 0.01)),
        scratch_reinit=reinit,
        budget=_budget(r, r.get(t, "budget", "", r.raw, {})),
        seeds=_seeds(r, t),
        notes=r.get(t, "notes", "", r.list_of(r.str_), ()),
        log_test_every_epoch=r.get(t, "log_test_every_epoch", "", r.bool_, True),
        weight_histograms=r.get(t, "weight_histograms", "", r.bool_, False),
        group_training=r.get(t, "group_training", "", lambda v, path: _group_training(r, v, path), "auto"),
        unsupported=unsupported,
        soft_from_pretrained=soft_recipe,
        transfer=transfer,
        rewind_epoch=_rewind_epoch(r, t["arms"], large),
        compare=_compare(r, t.get("compare", {})),
        detection=_detection(r, t.get("detection"), arms),
    )


def _detection(r: _Reader, raw: Any, arms: tuple[str, ...]) -> dict[str, Any] | None:
    from prunebench.experiment.detection_stages import parse_detection  # E8 only; imports this module

    return parse_detection(r, raw, arms)


def preset_dir() -> Path:
    """Where the shipped presets live (inside the installed package)."""
    return Path(str(resources.files("prunebench") / "presets"))


def list_presets() -> list[str]:
    return sorted(p.stem for p in preset_dir().glob("*.toml"))


def load_preset(path_or_name: str | Path, overrides: Sequence[str] = ()) -> Preset:
    """Load a preset from a TOML path, or a shipped one by bare name (`fmnist-l1`); `overrides`
    (`recipes.large.epochs=10`, see `overrides.apply_overrides`) edit it before it is validated."""
    raw, label = read_preset(path_or_name)
    if overrides:
        from prunebench.experiment.overrides import apply_overrides

        try:
            raw = apply_overrides(raw, overrides, label)
        except RecursionError:
            raise ConfigError(f"{label}: a --set value is nested too deeply") from None
    return parse_preset(raw, label)


def read_preset(path_or_name: str | Path) -> tuple[dict[str, Any], str]:
    """The raw TOML document of a preset file or shipped preset, and the label its errors use."""
    path = Path(path_or_name)
    label = str(path_or_name)
    if not path.is_file():
        shipped = preset_dir() / f"{path_or_name}.toml"
        if path.suffix or not shipped.is_file():
            raise ConfigError(f"no preset file or shipped preset named {label!r}; shipped: {', '.join(list_presets())}")
        path, label = shipped, f"presets/{shipped.name}"
    try:
        size = path.stat().st_size
        if size > MAX_PRESET_BYTES:  # checked before reading: a preset is a few KiB
            raise ConfigError(f"{label}: {size:,} bytes is too large for a preset (at most {MAX_PRESET_BYTES:,})")
        with path.open("rb") as f:
            data = f.read(MAX_PRESET_BYTES + 1)  # a file growing (or a device) is still capped
        if len(data) > MAX_PRESET_BYTES:
            raise ConfigError(f"{label}: too large for a preset (at most {MAX_PRESET_BYTES:,} bytes)")
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{label}: not UTF-8 text (byte {e.start}); a preset is a UTF-8 TOML file") from None
    except RecursionError:
        raise ConfigError(f"{label}: nested too deeply to be a preset") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{label}: not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{label}: cannot read: {e.strerror}") from None
    return raw, label
