"""Turn a preset's declarations into concrete objects: data info, large spec, method, recipes.

Planning needs no data: `plan_info` gives the data set's static facts, and the
split hash joins the identities only once the runner has loaded the data.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from prunebench.data import DatasetInfo, dataset_info
from prunebench.errors import ConfigError, PrunebenchError
from prunebench.experiment.identity import jsonable
from prunebench.experiment.preset import MethodConfig, Preset

# ImageNet is planned but not loadable yet (GPU presets): its static facts (protocol §2.2),
# so that the full-scale presets expand to their stage graph.
_PLANNING_ONLY = {
    "imagenet": DatasetInfo(
        "imagenet", 1000, 3, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225),
        pad=0, flip=True, train_size=1281167, test_size=50000, default_val_size=10000, norm="imagenet",
    ),
}  # fmt: skip


def plan_info(preset: Preset) -> DatasetInfo:
    """The `DatasetInfo` of the preset's data set with its named normalisation."""
    name = preset.data.name
    if name in _PLANNING_ONLY:
        return _PLANNING_ONLY[name]
    try:
        return dataset_info(name, norm=preset.data.normalisation)
    except PrunebenchError as e:
        raise ConfigError(f"{preset.file}: data: {e}") from None


def data_fingerprint(preset: Preset, split_hash: str | None = None) -> dict[str, Any]:
    """The data part of every identity; `split_hash` is added once the data is loaded."""
    fp = preset.data.fingerprint()
    if not preset.unsupported:
        info = plan_info(preset)
        fp["mean"], fp["std"] = list(info.mean), list(info.std)
    fp["split_hash"] = split_hash
    return fp


def large_spec(preset: Preset) -> Any:
    """The large model's spec: the named variant, scaled, with the preset's option overrides."""
    from prunebench.models import variant

    m = preset.model
    try:
        spec = variant(m.variant, plan_info(preset), width_mult=m.width_mult)
        return spec.replace(**m.options) if m.options else spec
    except (PrunebenchError, TypeError) as e:
        raise ConfigError(f"{preset.file}: model: {e}") from None


def recipe_of(d: dict[str, Any]) -> Any:
    from prunebench.train import Recipe

    return Recipe.from_dict(d)


@dataclass(frozen=True)
class ResolvedMethod:
    """JSON-able facts about one method entry that enter stage identities."""

    large_spec: dict[str, Any]
    large_training: dict[str, Any]
    options: dict[str, Any]
    finetune: dict[str, Any] | None


def callback_fingerprint(callbacks: list[Any]) -> list[dict[str, Any]]:
    """What a callback does to training: its type and its plain settings."""
    return [{"type": type(cb).__qualname__, "settings": jsonable(dict(sorted(vars(cb).items())))} for cb in callbacks]


def resolve_method(preset: Preset, m: MethodConfig) -> ResolvedMethod:
    if preset.unsupported:  # a stub: identities from the declarations alone
        declared = {"variant": preset.model.variant, "width_mult": preset.model.width_mult, "options": preset.model.options}
        return ResolvedMethod(declared, {"method": m.name}, m.options, preset.finetune.to_dict())
    from prunebench.prune import get_method

    method = get_method(m.name)
    spec = method.prepare_large(large_spec(preset), m.parsed)
    if method.large_training_kind == "plain" and not method.large_training(m.parsed, spec):
        training: dict[str, Any] = {"kind": "plain"}
    else:  # equal callbacks = equal large model, whatever the prune-time options
        training = {"kind": method.large_training_kind, "method": m.name,
                    "callbacks": callback_fingerprint(method.large_training(m.parsed, spec))}  # fmt: skip
    ft = method.finetune(m.parsed, recipe_of(preset.finetune.to_dict()))
    return ResolvedMethod(
        large_spec=spec.to_dict(),
        large_training=training,
        options=jsonable(dataclasses.asdict(m.parsed)),
        finetune=None if ft is None else ft.to_dict(),
    )
