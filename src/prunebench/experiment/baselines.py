"""Retraining-budget and selection baselines: their stage kinds, graph expansion and run functions.

Each retrains one pruning run (seed-paired, its `pruned` upstream) and is compared with
that run's fine-tuned arm:

- `finetune_long`: the method's fine-tune recipe for the Scratch-E epochs (the large
  recipe's), milestones stretched alike: fine-tuning given the same epochs as scratch
  training (Renda et al. 2020);
- `lr_rewind`: the inherited final weights retrained with the large recipe's LR schedule
  from epoch t = `arms.rewind_epoch` (t = 0: the whole schedule) (Renda et al. 2020);
- `weight_rewind`: the surviving weights reset to their values after t epochs of the large
  run (t = 0: its init, the large stage's `init/`; t > 0: the `epoch_<t>/` checkpoint it
  saves when asked), then the schedule from t (Frankle et al. 2019/2020, Renda et al. 2020);
- `random_layerwise`: the method's per-layer amounts with randomly chosen channels or
  weights of the large model, fine-tuned exactly as the method's own fine-tune arm
  (Su et al. 2020; Frankle et al. 2021).

They need a fine-tune stage to compare with, so methods without one (SFP, SSS) skip them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prunebench.errors import PrunebenchError
from prunebench.experiment.identity import derived_seed, non_default
from prunebench.experiment.resolve import recipe_of

if TYPE_CHECKING:
    from pathlib import Path

    from torch import nn

    from prunebench.experiment.graph import _Builder
    from prunebench.experiment.preset import MethodConfig, Preset
    from prunebench.experiment.resolve import ResolvedMethod
    from prunebench.experiment.stages import Training

#: stage kind (= arm) -> what it does, for the dry run
BASELINE_KINDS = {
    "finetune_long": "fine-tune the pruned model for the Scratch-E epochs",
    "lr_rewind": "retrain the pruned model with the large LR schedule from the rewind epoch",
    "weight_rewind": "reset the surviving weights to the large run's rewind epoch, retrain with the schedule from there",
    "random_layerwise": "prune the large model at random with the method's per-layer amounts, fine-tune",
}


# -- recipes and planning ----------------------------------------------------------------------


def rewound_recipe(large: dict[str, Any], epoch: int) -> dict[str, Any]:
    """The large recipe from (0-based) `epoch` on: epoch e of the result runs at the LR of
    epoch e + `epoch` of the original, for the remaining epochs."""
    rec = recipe_of(large)
    if not 0 <= epoch < rec.epochs:
        raise PrunebenchError(f"rewind epoch must be in [0, {rec.epochs}), got {epoch}")
    multipliers = rec.lr_multipliers or (rec.gamma,) * len(rec.milestones)
    later = [(m - epoch, k) for m, k in zip(rec.milestones, multipliers) if m > epoch]
    shifted = rec.replace(
        epochs=rec.epochs - epoch, lr=rec.lr_at(epoch), milestones=tuple(m for m, _ in later),
        lr_multipliers=None if rec.lr_multipliers is None else tuple(k for _, k in later),
    )  # fmt: skip
    return non_default(shifted)


def long_finetune_recipe(finetune: dict[str, Any], epochs: int) -> dict[str, Any]:
    """The fine-tune recipe run for `epochs` (Scratch-E's), its milestones at the same fractions."""
    ft = recipe_of(finetune)
    stretched = tuple(sorted({int(m * epochs / ft.epochs) for m in ft.milestones} - {0}))
    multipliers = ft.lr_multipliers
    if multipliers is not None and len(stretched) != len(ft.milestones):  # two fell on one epoch
        raise PrunebenchError(f"fine-tune milestones {list(ft.milestones)} do not stretch to {epochs} epochs")
    return non_default(ft.replace(epochs=epochs, milestones=stretched))


def large_rewind_config(preset: Preset) -> dict[str, Any]:
    """What the large stage's config gains when weight rewinding needs its epoch-t weights:
    nothing unless the arm is on with t > 0, so every other identity stays as it was."""
    if "weight_rewind" in preset.arms and preset.rewind_epoch > 0:
        return {"rewind_epoch": preset.rewind_epoch}
    return {}


def rewind_callbacks(config: dict[str, Any]) -> list[Any]:
    """The large stage's extra callback: save the weights after `rewind_epoch` epochs."""
    from prunebench.prune.lottery import SaveEpochCallback

    epoch = config.get("rewind_epoch", 0)
    return [SaveEpochCallback(epoch)] if epoch else []


def plan_baselines(
    b: _Builder, m: MethodConfig, r: ResolvedMethod, seed: int, prune: str, large: str, recipe: dict[str, Any]
) -> None:
    """The baseline arms of one pruning run; `large` is the model that was pruned, `recipe` its recipe."""
    p = b.preset
    if r.finetune is None or not set(BASELINE_KINDS) & set(p.arms):
        return
    method = {"method": m.name, "options": r.options}
    payload = {"method": m.name, "options": m.options}
    t = p.rewind_epoch
    configs: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
        "finetune_long": ({"recipe": long_finetune_recipe(r.finetune, recipe["epochs"])}, {"pruned": prune}),
        "lr_rewind": ({"recipe": rewound_recipe(recipe, t), "rewind_epoch": t}, {"pruned": prune}),
        "weight_rewind": ({"recipe": rewound_recipe(recipe, t), "rewind_epoch": t}, {"pruned": prune, "large": large}),
        "random_layerwise": (
            {"recipe": r.finetune, "init_seed": derived_seed(seed, "random_layerwise")}, {"pruned": prune, "large": large},
        ),
    }  # fmt: skip
    for kind, (cfg, ups) in configs.items():
        if kind in p.arms:
            b.link(m.label, kind, b.add(kind, seed, {**cfg, **method}, ups, payload, m.label))


# -- running ----------------------------------------------------------------------------------


def rewound_model(weights_dir: Path, pruned: nn.Module, masks: Any, kept: dict[str, list[int]] | None) -> nn.Module:
    """The pruned architecture holding the large run's saved weights (`weights_dir`) for the
    surviving channels (sliced by `kept`) or entries (zeroed outside `masks`)."""
    from prunebench.models import attached_spec
    from prunebench.prune import prune_channels
    from prunebench.prune.lottery import winning_ticket
    from prunebench.train import load_model

    if not weights_dir.is_dir():
        raise PrunebenchError(f"{weights_dir}: the large run saved no weights for this rewind epoch")
    if masks:
        model = winning_ticket(weights_dir, masks)
    elif kept:
        model = prune_channels(load_model(weights_dir)[0], kept)
    else:
        raise PrunebenchError("weight rewinding needs the kept channels or the masks of the pruning run; it recorded neither")
    if attached_spec(model) != attached_spec(pruned):
        raise PrunebenchError("weight rewinding: the rewound weights do not have the pruned model's architecture")
    return model


def _retrain(ctx: Any, model: nn.Module, masks: Any, meta: dict[str, Any], **extra: Any) -> Training:
    """Train `model` with the stage's recipe and the method's fine-tune callbacks; record it as the
    stage's arm (with the budget every training stage records; `extra` goes to the stage's record)."""
    from prunebench.experiment.stages import TrainJob, _method, _record_training, _style
    from prunebench.prune import PruneResult
    from prunebench.train import seed_everything

    method, opts = _method(ctx.stage)
    seed_everything(ctx.stage.seed)
    callbacks = method.finetune_callbacks(opts, PruneResult(model, masks, meta.get("kept"), meta.get("info") or {}))
    recipe = recipe_of(ctx.stage.config["recipe"])
    result = yield TrainJob(model, recipe, ctx.stage.seed, masks=masks, callbacks=callbacks)  # stages.compute_stage trains it
    _record_training(ctx, ctx.stage.kind, model, masks, result, recipe, meta.get("flops_ratio"))
    return _style(masks), {"paired_prune": ctx.stage.upstream["pruned"], **extra}


def _from_pruned(ctx: Any) -> Training:
    """finetune_long and lr_rewind: from the pruned model's inherited final weights."""
    from prunebench.experiment.stages import _load_pruned

    model, masks, meta = _load_pruned(ctx)
    extra = {"rewind_epoch": ctx.stage.config["rewind_epoch"]} if "rewind_epoch" in ctx.stage.config else {}
    return (yield from _retrain(ctx, model, masks, meta, **extra))


def _weight_rewind(ctx: Any) -> Training:
    from prunebench.experiment.stages import _load_pruned
    from prunebench.prune.lottery import ticket_dir

    pruned, masks, meta = _load_pruned(ctx)
    t = ctx.stage.config["rewind_epoch"]
    model = rewound_model(ticket_dir(ctx.up("large"), t), pruned, masks, meta.get("kept"))
    return (yield from _retrain(ctx, model, masks, meta, rewind_epoch=t))


def _random_layerwise(ctx: Any) -> Training:
    from prunebench.experiment.stages import _load_pruned
    from prunebench.prune.random_layerwise import random_layerwise
    from prunebench.train import load_model

    _, masks, meta = _load_pruned(ctx)
    large, _, _ = load_model(ctx.up("large") / "final")
    seed = ctx.stage.config["init_seed"]
    model, new_masks, kept = random_layerwise(large, masks, meta.get("kept"), seed=seed)
    return (yield from _retrain(ctx, model, new_masks, {**meta, "kept": kept}, selection_seed=seed))


#: stage kind -> run function, merged into `stages._KINDS`
RUNNERS = {
    "finetune_long": _from_pruned,
    "lr_rewind": _from_pruned,
    "weight_rewind": _weight_rewind,
    "random_layerwise": _random_layerwise,
}
