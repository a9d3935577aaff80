"""The training recipe: optimizer, schedule and speed switches, as plain JSON data."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from prunebench.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")


def _whole(what: str, value: Any) -> int:
    try:
        ok = not isinstance(value, bool) and int(value) == value
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"recipe: {what} must be whole epochs, got {value!r} (fractions: use Recipe.from_fractions)")
    return int(value)


def fraction_milestones(epochs: int, fractions: tuple[float, ...] | list[float]) -> dict[int, int]:
    """Milestones at fractions of a run of `epochs`: {index of the fraction: epoch int(f * epochs)}.

    A milestone that rounds down to epoch 0, or onto the epoch of an earlier one, is dropped:
    a run too short for its schedule (the default 0.5, 0.75 with 1 or 2 epochs) then trains
    at the LR it asks for instead of starting at, or jumping to, LR x gamma^2.
    """
    kept: dict[int, int] = {}
    for i, f in enumerate(fractions):
        epoch = int(f * epochs)
        if epoch > 0 and epoch not in kept.values():
            kept[i] = epoch
    return kept


@dataclass(frozen=True)
class Recipe:
    """How a model is trained.

    Epochs are 0-based: the LR of epoch `e` is `lr` times the multiplier of every
    milestone `m <= e` (each multiplier defaults to `gamma`). No milestones means a
    constant LR (the fine-tune recipe). `precision` is "auto" (bf16 autocast where the
    hardware supports it), "fp32" or "bf16"; `channels_last` is "auto" (on with bf16),
    True or False; `compile` wraps the model in `torch.compile` (useful on GPUs only).
    """

    epochs: int
    lr: float
    batch_size: int = 64
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    lr_multipliers: tuple[float, ...] | None = None
    precision: str = "auto"
    channels_last: bool | str = "auto"
    compile: bool = False
    #: processes that train this recipe data-parallel (`[recipes.large] nproc = 8`): the runner launches
    #: such a stage under torchrun (train/distributed.py); the trainer itself ignores it
    nproc: int = 1

    def __post_init__(self) -> None:
        # Normalise numbers from JSON, NumPy or budget rules: ints stay ints, lists become
        # tuples (so the recipe stays hashable); a fractional epoch count is an error.
        object.__setattr__(self, "epochs", _whole("epochs", self.epochs))
        object.__setattr__(self, "milestones", tuple(_whole("milestones", m) for m in self.milestones))
        if self.lr_multipliers is not None:
            object.__setattr__(self, "lr_multipliers", tuple(float(m) for m in self.lr_multipliers))
        self._validate()

    def _validate(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"recipe: epochs must be a positive integer, got {self.epochs!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"recipe: lr must be positive, got {self.lr!r}")
        if self.batch_size < 1:
            raise ConfigError(f"recipe: batch_size must be positive, got {self.batch_size!r}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"recipe: momentum must be in [0, 1), got {self.momentum!r}")
        if self.nesterov and self.momentum == 0:
            raise ConfigError("recipe: nesterov needs a non-zero momentum")
        if self.weight_decay < 0:
            raise ConfigError(f"recipe: weight_decay must be >= 0, got {self.weight_decay!r}")
        if any(m < 0 for m in self.milestones) or list(self.milestones) != sorted(self.milestones):
            raise ConfigError(f"recipe: milestones must be non-negative and sorted, got {list(self.milestones)}")
        if self.lr_multipliers is not None and len(self.lr_multipliers) != len(self.milestones):
            raise ConfigError(
                f"recipe: {len(self.lr_multipliers)} lr_multipliers for {len(self.milestones)} milestones"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"recipe: precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.channels_last not in ("auto", True, False):
            raise ConfigError(f"recipe: channels_last must be 'auto', true or false, got {self.channels_last!r}")
        if isinstance(self.nproc, bool) or not isinstance(self.nproc, int) or self.nproc < 1:
            raise ConfigError(f"recipe: nproc must be a positive integer, got {self.nproc!r}")

    @classmethod
    def from_fractions(cls, epochs: int, fractions: tuple[float, ...] | list[float], **kw: Any) -> "Recipe":
        """A recipe whose milestones are given as fractions of the run (0.5 -> epoch int(0.5*epochs));
        see `fraction_milestones` for the ones a short run drops. `lr_multipliers`, if given,
        has one value per fraction and loses those of the dropped milestones."""
        if any(not 0 <= f <= 1 for f in fractions):
            raise ConfigError(f"recipe: milestone fractions must be in [0, 1], got {list(fractions)}")
        kept = fraction_milestones(epochs, fractions)
        multipliers = kw.pop("lr_multipliers", None)
        if multipliers is not None:
            if len(multipliers) != len(fractions):
                raise ConfigError(f"recipe: {len(multipliers)} lr_multipliers for {len(fractions)} milestone fractions")
            multipliers = tuple(multipliers[i] for i in kept)
        return cls(epochs=epochs, milestones=tuple(kept.values()), lr_multipliers=multipliers, **kw)

    def lr_at(self, epoch: int) -> float:
        """The learning rate used throughout (0-based) epoch `epoch`."""
        multipliers = self.lr_multipliers or (self.gamma,) * len(self.milestones)
        lr = self.lr
        for milestone, mult in zip(self.milestones, multipliers):
            if milestone <= epoch:
                lr *= mult
        return lr

    def replace(self, **changes: Any) -> "Recipe":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = list(self.milestones)
        d["lr_multipliers"] = None if self.lr_multipliers is None else list(self.lr_multipliers)
        if self.nproc == 1:  # the default: left out, so run folders and identities from before it stay valid
            del d["nproc"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recipe":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"recipe: unknown key(s) {', '.join(sorted(unknown))}")
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError(f"recipe: {e}") from None
