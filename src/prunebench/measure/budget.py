"""Scratch-B training budgets (docs/protocol.md §5): the one rule used everywhere.

Scratch-E reuses the large model's schedule unchanged.  Scratch-B trains for
E_B = int(base · r) epochs (r = FLOPs(large) / FLOPs(pruned), reference
counter, truncated like the reference), with the LR milestones stretched to
match.  Worked examples (CIFAR r = 1.25 → 200 epochs, decays at 100 and 150;
ImageNet r = 1.5 → 135 epochs, ÷10 every 45; r ≥ 2 → capped at 180, every 60)
are unit tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.measure.flops import flops_ratio

KINDS = ("paper", "incl_finetune")
MILESTONE_RULES = ("fraction", "step", "scale")
#: which model FLOPs(pruned) is counted on (see `BudgetPolicy.flops_rule`)
FLOPS_RULES = ("pruned", "soft_zeroed")


@dataclass(frozen=True)
class BudgetPolicy:
    """How a Scratch-B budget is derived; recorded with every scratch run.

    kind: "paper" charges the pruning pipeline the large model's epochs only
        (K1·F1/F2); "incl_finetune" adds the fine-tune epochs (K1·F1/F2 + K2).
    cap: if r >= cap, train cap × base epochs (ImageNet: 2.0, the ≥ of the
        reference code); None = no cap (CIFAR).
    base_epochs: the epochs multiplied by r when they differ from the schedule's
        (SFP with pretraining: 400 over a 200-epoch schedule); None = the schedule's.
    finetune_epochs: K2, added by "incl_finetune".
    fixed_first_epochs: milestones at or before this epoch are not stretched
        (SFP's one-epoch warm-up stays one epoch).
    milestone_rule: how the milestones move to the new length E_B:
        "fraction" -- each stays at the same fraction of the run, m·E_B // base
                      (CIFAR: int(0.5·E_B), int(0.75·E_B); SFP: 60/200 … of E_B);
        "step"     -- an even step schedule, step = m_1·E_B // base
                      (ImageNet: ÷10 every int(E_B / 3));
        "scale"    -- each is multiplied by r, int(m·r) (SSS: int(30r), int(60r),
                      int(90r); with base_epochs=400 it is also the SFP
                      reference's mixed 400-epoch compat schedule).
    flops_rule: which model the FLOPs ratio r = FLOPs(large) / FLOPs(pruned) counts:
        "pruned"      -- the pruned model as deployed (physically smaller; masks counted
                         sparse).  For SFP this is the hard-pruned model: a block's first
                         conv loses its zeroed filters *and* the next conv its input slices.
        "soft_zeroed" -- the reference's count for SFP (the E7 presets): the soft-zeroed
                         *full* model, where only the zeroed filters' own weights are
                         sparse and the next layer's input slices stay dense (at keep 0.7 on
                         CIFAR ResNets r ≈ 1.60 instead of ≈ 1.38).  Only methods that
                         soft-zero filters (SFP: ``info["zeroed_counts"]``) can use it.
        Every Scratch-B run records its rule in its budget's ``policy``.
    """

    kind: str = "paper"
    cap: float | None = None
    base_epochs: int | None = None
    finetune_epochs: int = 0
    fixed_first_epochs: int = 0
    milestone_rule: str = "fraction"
    flops_rule: str = "pruned"

    def __post_init__(self) -> None:
        if self.flops_rule not in FLOPS_RULES:
            raise ConfigError(f"unknown budget flops_rule {self.flops_rule!r}; choose one of: {', '.join(FLOPS_RULES)}")
        if self.kind not in KINDS:
            raise ConfigError(f"unknown budget kind {self.kind!r}; choose one of: {', '.join(KINDS)}")
        if self.milestone_rule not in MILESTONE_RULES:
            raise ConfigError(
                f"unknown milestone rule {self.milestone_rule!r}; choose one of: {', '.join(MILESTONE_RULES)}"
            )
        if self.cap is not None and not self.cap >= 1:
            raise ConfigError(f"budget cap must be >= 1 (or none), got {self.cap}")
        if self.base_epochs is not None and self.base_epochs < 1:
            raise ConfigError(f"budget base_epochs must be >= 1, got {self.base_epochs}")
        if self.finetune_epochs < 0 or self.fixed_first_epochs < 0:
            raise ConfigError("finetune_epochs and fixed_first_epochs must be >= 0")


@dataclass(frozen=True)
class Budget:
    """A Scratch-B schedule: `epochs` with LR `milestones`, from FLOPs ratio `ratio`."""

    epochs: int
    milestones: tuple[int, ...]
    ratio: float
    capped: bool
    policy: BudgetPolicy


def scratch_b_budget(
    base_epochs: int,
    base_milestones: tuple[int, ...] | list[int],
    flops_ratio: float,
    policy: BudgetPolicy | None = None,
) -> Budget:
    """The Scratch-B epochs and milestones for a large-model schedule of
    `base_epochs` epochs with `base_milestones`, at FLOPs ratio `flops_ratio`."""
    policy = policy or BudgetPolicy()
    milestones = tuple(int(m) for m in base_milestones)
    _check_schedule(base_epochs, milestones, policy)
    r = float(flops_ratio)
    if not math.isfinite(r) or r < 1:
        raise ConfigError(
            f"FLOPs ratio {r:.4g} is below 1: the pruned model costs more FLOPs than the large one"
        )
    budget_base = policy.base_epochs or base_epochs
    capped = policy.cap is not None and r >= policy.cap
    stretch = r if policy.cap is None else min(r, policy.cap)
    core = int(budget_base * stretch)
    epochs = core + (policy.finetune_epochs if policy.kind == "incl_finetune" else 0)

    def move(m: int) -> int:
        if m <= policy.fixed_first_epochs:
            return m
        if policy.milestone_rule == "scale":
            return int(m * stretch * epochs / core)
        return m * epochs // base_epochs

    if policy.milestone_rule == "step":
        step = milestones[0] * epochs // base_epochs
        new = tuple(step * (k + 1) for k in range(len(milestones)))
    else:
        new = tuple(move(m) for m in milestones)
    return Budget(epochs=epochs, milestones=new, ratio=r, capped=capped, policy=policy)


def budget_flops_ratio(
    large: nn.Module,
    pruned: nn.Module,
    masks: dict[str, torch.Tensor] | None,
    rule: str = "pruned",
    zeroed_counts: dict[str, int] | None = None,
) -> float:
    """The Scratch-B FLOPs ratio by `rule` (see `BudgetPolicy.flops_rule`), reference counter.

    "pruned": FLOPs(large) / FLOPs(pruned, sparse where `masks` are given).
    "soft_zeroed": FLOPs(large) / FLOPs(large with `zeroed_counts[conv]` filters of each conv
    zeroed, sparse); which filters does not matter, only how many.
    """
    if rule not in FLOPS_RULES:
        raise ConfigError(f"unknown budget flops_rule {rule!r}; choose one of: {', '.join(FLOPS_RULES)}")
    if rule == "pruned":
        return flops_ratio(large, pruned, masks)
    if not zeroed_counts:
        raise ConfigError(
            "budget flops_rule 'soft_zeroed' counts a soft-zeroed model; this pruning run zeroed no filters "
            "(only soft filter pruning, 'sfp', records them): use flops_rule = 'pruned'"
        )
    return flops_ratio(large, large, zeroed_filter_masks(large, zeroed_counts))


def zeroed_filter_masks(model: nn.Module, zeroed_counts: dict[str, int]) -> dict[str, torch.Tensor]:
    """Masks of `model` with the first `count` filters of each named conv off (a soft-zeroed model's shape)."""
    masks = {}
    for name, count in zeroed_counts.items():
        weight = model.get_parameter(f"{name}.weight")
        if not 0 <= count <= weight.shape[0]:
            raise ConfigError(f"{name}: cannot zero {count} of {weight.shape[0]} filters")
        mask = torch.ones_like(weight, dtype=torch.bool)
        mask[:count] = False
        masks[f"{name}.weight"] = mask
    return masks


def standard_schedule(dataset: str, epochs: int | None = None) -> tuple[int, tuple[int, ...], BudgetPolicy]:
    """The paper's large-model schedule and Scratch-B policy for `dataset`:
    ImageNet 90 epochs, ÷10 every 30, capped at 2×; everything else (CIFAR and
    the small stand-ins) 160 epochs, ÷10 at 50% and 75%, no cap.  `epochs`
    overrides the length; the milestones keep their place in the run."""
    if epochs is not None and epochs < 1:
        raise ConfigError(f"epochs must be >= 1, got {epochs}")
    if dataset == "imagenet":
        e = epochs or 90
        return e, (e // 3, 2 * e // 3), BudgetPolicy(cap=2.0, milestone_rule="step")
    e = epochs or 160
    return e, (e // 2, 3 * e // 4), BudgetPolicy()


def _check_schedule(base_epochs: int, milestones: tuple[int, ...], policy: BudgetPolicy) -> None:
    if base_epochs < 1:
        raise ConfigError(f"base epochs must be >= 1, got {base_epochs}")
    if any(m < 1 or m > base_epochs for m in milestones):
        raise ConfigError(f"milestones {list(milestones)} must lie in 1..{base_epochs}")
    if list(milestones) != sorted(set(milestones)):
        raise ConfigError(f"milestones {list(milestones)} must be strictly increasing")
    if policy.milestone_rule == "step":
        if not milestones or any(m != milestones[0] * (k + 1) for k, m in enumerate(milestones)):
            raise ConfigError(f"the 'step' rule needs evenly spaced milestones, got {list(milestones)}")
