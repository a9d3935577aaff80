"""Scratch-B budgets known before anything is trained, for the dry run.

A Scratch-B stage's epochs are int(base · r), r = FLOPs(large) / FLOPs(pruned) by the budget
policy's `flops_rule`.  When a method's options fix the pruned architecture (per-layer counts:
L1-norm's named variants and ratios, SFP's int(C·ratio)), pruning a freshly built large model
gives exactly the FLOPs the real run will measure, so the dry run can print the epochs; for
methods whose pruning decides the widths from the trained weights (slimming, magnitude,
ThiNet, ...) it says that the budget follows from the pruned model.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from prunebench.errors import PrunebenchError
from prunebench.experiment.resolve import recipe_of


def planned_scratch_b(plan: Any) -> dict[str, str]:
    """Scratch-B stage id -> one line saying its budget (epochs, milestones, FLOPs ratio and rule)."""
    if plan.preset.unsupported:
        return {}
    by_id = plan.by_id()
    cache: dict[str, str] = {}
    out: dict[str, str] = {}
    for stage in plan.stages:
        if stage.kind != "scratch_b":
            continue
        prune = by_id[stage.upstream["pruned"]]
        large = _large_stage(by_id, prune)
        key = json.dumps([large.config.get("model"), prune.payload.get("method"), prune.payload.get("options"),
                          stage.config["budget"], stage.config["recipe"]], sort_keys=True, default=str)  # fmt: skip
        if key not in cache:
            cache[key] = _describe(large.config["model"], prune.payload, stage.config)
        out[stage.id] = cache[key]
    return out


def _large_stage(by_id: dict[str, Any], prune: Any) -> Any:
    """The stage whose model the prune stage prunes (a `soft_train` one for SFP from a pretrained model)."""
    return by_id[prune.upstream["large"]]


def planned_budget(large: Any, method_name: str, options: dict[str, Any], recipe: Any, policy: Any) -> Any | None:
    """The Scratch-B `Budget` of pruning the freshly built `large` model with `method_name` / `options`
    after the large `recipe`, or None when pruning decides the architecture from the trained weights."""
    from prunebench.measure import budget_flops_ratio, scratch_b_budget
    from prunebench.prune import get_method
    from prunebench.train import seed_everything

    method = get_method(method_name)
    opts = method.parse_options(options)
    if not method.planned_flops_fixed(opts):
        return None
    seed_everything(0)  # which filters a fresh model loses does not change what they cost
    result = method.planned_prune(copy.deepcopy(large), opts)
    if result is None:
        return None
    zeroed = result.info.get("zeroed_counts")
    ratio = budget_flops_ratio(large, result.model, result.masks, policy.flops_rule, zeroed)
    return scratch_b_budget(recipe.epochs, recipe.milestones, ratio, policy)


def budget_text(budget: Any) -> str:
    decays = ", ".join(map(str, budget.milestones)) or "none"
    capped = " (capped)" if budget.capped else ""
    return (f"Scratch-B {budget.epochs} epochs{capped}, LR changes at {decays}; "
            f"FLOPs ratio {budget.ratio:.4f} ({budget.policy.flops_rule} FLOPs rule)")  # fmt: skip


def _describe(model_config: dict[str, Any], payload: dict[str, Any], config: dict[str, Any]) -> str:
    from prunebench.measure import BudgetPolicy
    from prunebench.models import spec_from_dict

    policy = BudgetPolicy(**config["budget"])
    try:
        large = spec_from_dict(model_config).build()
        budget = planned_budget(large, payload["method"], payload["options"], recipe_of(config["recipe"]), policy)
    except PrunebenchError as e:
        return f"Scratch-B budget not plannable: {e}"
    if budget is None:
        base = policy.base_epochs or config["recipe"]["epochs"]
        return f"Scratch-B epochs: int({base} x r), r measured on the pruned model ({policy.flops_rule} FLOPs rule)"
    return budget_text(budget)
