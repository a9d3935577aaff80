"""Turn a preset's declarations into concrete objects: data info, large spec, method, recipes.

Planning needs no data: `plan_info` gives the data set's static facts, and the
split hash joins the identities only once the runner has loaded the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prunebench.data import DatasetInfo, dataset_info
from prunebench.errors import ConfigError, PrunebenchError
from prunebench.experiment.identity import jsonable, non_default
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


def check_runnable(preset: Preset) -> None:
    """Refuse, in one line, presets that can be planned but not run."""
    if preset.unsupported:
        raise ConfigError(f"preset {preset.name} is a documented stub and cannot run: {preset.unsupported}")
    if preset.data.name in _PLANNING_ONLY:
        raise ConfigError(f"{preset.file}: data set {preset.data.name!r} can be planned (--dry-run) but not loaded yet")


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


def spec_config(spec: Any) -> dict[str, Any]:
    """A spec as it enters identities: its family and non-default fields (`spec_from_dict` reads it back)."""
    return {"family": spec.family, **non_default(spec)}


@dataclass(frozen=True)
class ResolvedMethod:
    """JSON-able facts about one method entry that enter stage identities."""

    large_spec: dict[str, Any]
    plain_spec: dict[str, Any]  # before `prepare_large` (SSS adds gates), for the plain baseline
    large_training: dict[str, Any]
    options: dict[str, Any]
    finetune: dict[str, Any] | None
    style: str = "physical"  # "mask" methods get the sparse architecture-search arms
    pretrained: bool = False  # soft-pruning training starts from a plainly trained large model


def callback_fingerprint(callbacks: list[Any]) -> list[dict[str, Any]]:
    """What a callback does to training: its type and its plain settings."""
    return [{"type": type(cb).__qualname__, "settings": jsonable(dict(sorted(vars(cb).items())))} for cb in callbacks]


def resolve_method(preset: Preset, m: MethodConfig) -> ResolvedMethod:
    if preset.unsupported:  # a stub: identities from the declarations alone
        declared = {"variant": preset.model.variant, "width_mult": preset.model.width_mult, "options": preset.model.options}
        ft = non_default(recipe_of(preset.finetune.to_dict()))
        return ResolvedMethod(declared, declared, {"method": m.name}, m.options, ft, pretrained=bool(m.options.get("pretrained")))
    from prunebench.prune import get_method

    method = get_method(m.name)
    plain = large_spec(preset)
    spec = method.prepare_large(plain, m.parsed)
    if method.large_training_kind == "plain" and not method.large_training(m.parsed, spec):
        training: dict[str, Any] = {"kind": "plain"}
    else:  # equal callbacks = equal large model, whatever the prune-time options
        training = {"kind": method.large_training_kind, "method": m.name,
                    "callbacks": callback_fingerprint(method.large_training(m.parsed, spec))}  # fmt: skip
    ft_recipe = method.finetune(m.parsed, recipe_of(preset.finetune.to_dict()))
    return ResolvedMethod(
        large_spec=spec_config(spec),
        plain_spec=spec_config(plain),
        large_training=training,
        # options that decide only speed (`execution_options`) do not make another result
        options={k: v for k, v in non_default(m.parsed).items() if k not in method.execution_options},
        finetune=None if ft_recipe is None else non_default(ft_recipe),
        style=method.style,
        pretrained=method.large_training_kind == "soft" and bool(getattr(m.parsed, "pretrained", False)),
    )
