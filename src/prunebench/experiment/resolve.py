"""Turn a preset's declarations into concrete objects: data info, large spec, method, recipes.

Planning needs no data: `plan_info` gives the data set's static facts, and the
split hash joins the identities only once the runner has loaded the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prunebench.data import DatasetInfo, dataset_info
from prunebench.data.info import sized
from prunebench.data.loader import augmented
from prunebench.errors import ConfigError, PrunebenchError
from prunebench.experiment.identity import jsonable, non_default
from prunebench.experiment.preset import MethodConfig, Preset

def plan_info(preset: Preset) -> DatasetInfo:
    """The `DatasetInfo` of the preset's data set with its named normalisation (and, for an image
    folder, the preset's class count and crop)."""
    d = preset.data
    try:
        info = sized(dataset_info(d.name, norm=d.normalisation), classes=d.classes, input_size=d.input_size)
        return augmented(info, d.crop_pad, d.flip)
    except PrunebenchError as e:
        raise ConfigError(f"{preset.file}: data: {e}") from None


def check_runnable(preset: Preset) -> None:
    """Refuse, in one line, presets that can be planned but not run."""
    if preset.unsupported:
        raise ConfigError(f"preset {preset.name} is a documented stub and cannot run: {preset.unsupported}")
    d = preset.data
    if (d.classes is not None or d.input_size is not None) and d.name != "imagenet":
        raise ConfigError(f"{preset.file}: data: classes and input_size apply to image-folder data sets (imagenet) only")


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
    if m.builder is not None:  # a user model: the data set decides classes, channels and input size
        from prunebench.models import BuilderSpec

        info = plan_info(preset)
        try:
            return BuilderSpec(builder=m.builder, kwargs=m.kwargs, num_classes=info.num_classes,
                               in_channels=info.in_channels, input_size=info.input_size)  # fmt: skip
        except PrunebenchError as e:
            raise ConfigError(f"{preset.file}: model.builder: {e}") from None
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
