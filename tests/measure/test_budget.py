"""Scratch-B budgets: the worked examples of docs/protocol.md §5 and the edge cases of each rule."""

from __future__ import annotations

import pytest

from prunebench.errors import ConfigError
from prunebench.measure import BudgetPolicy, scratch_b_budget, standard_schedule

IMAGENET = standard_schedule("imagenet")


def test_cifar_worked_example_no_cap() -> None:
    b = scratch_b_budget(160, (80, 120), 1.25)
    assert (b.epochs, b.milestones, b.capped, b.ratio) == (200, (100, 150), False, 1.25)
    huge = scratch_b_budget(160, (80, 120), 5.0)
    assert (huge.epochs, huge.milestones, huge.capped) == (800, (400, 600), False)


def test_cifar_truncates_like_the_reference() -> None:
    r = 1.237
    b = scratch_b_budget(160, (80, 120), r)
    e = int(160 * r)
    assert (b.epochs, b.milestones) == (e, (int(0.5 * e), int(0.75 * e))) == (197, (98, 147))


@pytest.mark.parametrize(
    ("r", "epochs", "step", "capped"),
    [(1.5, 135, 45, False), (3.0, 180, 60, True), (2.0, 180, 60, True), (1.99, 179, 59, False), (1.0, 90, 30, False)],
)
def test_imagenet_cap_uses_greater_or_equal(r: float, epochs: int, step: int, capped: bool) -> None:
    base, milestones, policy = IMAGENET
    assert (base, milestones, policy.cap) == (90, (30, 60), 2.0)
    b = scratch_b_budget(base, milestones, r, policy)
    assert (b.epochs, b.milestones, b.capped) == (epochs, (step, 2 * step), capped)


def test_sss_stretches_every_stage_by_r() -> None:
    r = 1.237
    b = scratch_b_budget(100, (30, 60, 90), r, BudgetPolicy(milestone_rule="scale"))
    assert b.epochs == int(100 * r) == 123
    assert b.milestones == (int(30 * r), int(60 * r), int(90 * r)) == (37, 74, 111)
    # The fraction rule would place the first decay at int(0.3 · 123) = 36 instead.
    assert scratch_b_budget(100, (30, 60, 90), r).milestones[0] == 36


def test_sfp_keeps_warmup_epoch_and_stretches_from_same_base() -> None:
    sfp = (1, 60, 120, 160)
    b = scratch_b_budget(200, sfp, 1.5, BudgetPolicy(fixed_first_epochs=1))
    assert (b.epochs, b.milestones) == (300, (1, 90, 180, 240))
    with_pretrain = scratch_b_budget(200, sfp, 1.5, BudgetPolicy(base_epochs=400, fixed_first_epochs=1))
    assert (with_pretrain.epochs, with_pretrain.milestones) == (600, (1, 180, 360, 480))
    # Compat: the reference's 400-epoch base with milestones int(60r), int(120r), int(160r).
    compat = scratch_b_budget(200, sfp, 1.5, BudgetPolicy(base_epochs=400, fixed_first_epochs=1, milestone_rule="scale"))
    assert (compat.epochs, compat.milestones) == (600, (1, 90, 180, 240))


def test_incl_finetune_adds_k2() -> None:
    paper = scratch_b_budget(160, (80, 120), 1.25, BudgetPolicy())
    incl = scratch_b_budget(160, (80, 120), 1.25, BudgetPolicy(kind="incl_finetune", finetune_epochs=40))
    assert paper.epochs == 200 and incl.epochs == 240
    assert incl.milestones == (120, 180) and incl.policy.kind == "incl_finetune"
    # "paper" ignores the fine-tune epochs even when they are recorded in the policy.
    assert scratch_b_budget(160, (80, 120), 1.25, BudgetPolicy(finetune_epochs=40)).epochs == 200


def test_ratio_below_one_is_rejected() -> None:
    with pytest.raises(ConfigError, match="below 1"):
        scratch_b_budget(160, (80, 120), 0.9)
    assert scratch_b_budget(160, (80, 120), 1.0).epochs == 160


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "both"}, "unknown budget kind"),
        ({"milestone_rule": "cosine"}, "unknown milestone rule"),
        ({"cap": 0.5}, "cap must be >= 1"),
        ({"base_epochs": 0}, "base_epochs"),
    ],
)
def test_bad_policies(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        BudgetPolicy(**kwargs)


def test_bad_schedules() -> None:
    with pytest.raises(ConfigError, match="strictly increasing"):
        scratch_b_budget(160, (120, 80), 1.5)
    with pytest.raises(ConfigError, match="must lie in"):
        scratch_b_budget(160, (80, 200), 1.5)
    with pytest.raises(ConfigError, match="evenly spaced"):
        scratch_b_budget(90, (30, 50), 1.5, BudgetPolicy(milestone_rule="step"))


def test_standard_schedule_override() -> None:
    assert standard_schedule("cifar10") == (160, (80, 120), standard_schedule("fashion-mnist")[2])
    assert standard_schedule("cifar10")[2].cap is None
    assert standard_schedule("digits", epochs=20)[:2] == (20, (10, 15))
    assert standard_schedule("imagenet", epochs=30)[:2] == (30, (10, 20))
