"""Every option of every registered method acts or is refused: none is accepted and ignored.

For each Options field a case names options without it (`base`) and with it changed (`changed`);
the test shows what the method does differs (its large training, its large spec, its fine-tune
recipe, the stage graph it plans, or the pruned model, masks and kept channels), or that the
changed value is refused with a `ConfigError`.  A method's `execution_options` only decide how
fast it runs: they must leave the result as it is.  A new option without a case fails this test.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import math
import tomllib
from collections.abc import Callable
from typing import Any

import pytest
import torch
from kit import tiny_preset
from torch import nn

from prunebench.data import load
from prunebench.errors import ConfigError, PrunebenchError
from prunebench.experiment import expand, parse_preset
from prunebench.experiment.resolve import callback_fingerprint, spec_config
from prunebench.models import CifarResNetSpec, ResNetSpec, VGGSpec, attached_spec, variant
from prunebench.prune import get_method, list_methods
from prunebench.train import Recipe, seed_everything

VGG = VGGSpec(cfg=(8, "M", 16, 16, "M", 16), in_channels=1, input_size=8)
RESNET = CifarResNetSpec.uniform(1, planes=(8, 16, 32), in_channels=1, input_size=8)
MODELS: dict[str, Callable[[], Any]] = {
    "vgg": lambda: VGG,
    "resnet": lambda: RESNET,
    "resnet56-plan": lambda: variant("resnet56", num_classes=10, in_channels=1, input_size=8),
    # named targets of full-width nets: planned (per-layer keep counts), not run
    "vgg16-plan": lambda: variant("vgg16-imagenet", num_classes=10, in_channels=1, input_size=224),
    "resnet50": lambda: variant("resnet50", num_classes=10, in_channels=1, input_size=32),
    "bottleneck": lambda: ResNetSpec.uniform("bottleneck", (1, 1), planes=(16, 32), stem=8, num_classes=10,
                                             in_channels=1, input_size=16),  # fmt: skip
}
BASE_RECIPE = Recipe(epochs=2, lr=0.01, precision="fp32")
SAMPLING = {"images": 10, "locations": 2}

# method -> field -> (model, base options, changed options)
CASES: dict[str, dict[str, tuple[str, dict[str, Any], dict[str, Any]]]] = {
    "l1norm": {
        "variant": ("resnet56-plan", {"variant": "resnet56-a"}, {"variant": "resnet56-b"}),
        "ratio": ("vgg", {"ratio": 0.3}, {"ratio": 0.6}),
        "skip": ("vgg", {"ratio": 0.5}, {"ratio": 0.5, "skip": ["features.0"]}),
        "skip_stages": ("vgg", {"ratio": 0.5}, {"ratio": 0.5, "skip_stages": [0]}),
        "scoring": ("vgg", {"ratio": 0.5}, {"ratio": 0.5, "scoring": "greedy"}),
        "mask_form": ("vgg", {"ratio": 0.5}, {"ratio": 0.5, "mask_form": True}),
    },
    "slimming": {
        "ratio": ("vgg", {"ratio": 0.3}, {"ratio": 0.6}),
        "lam": ("vgg", {"ratio": 0.3}, {"ratio": 0.3, "lam": 1e-3}),
        "min_channels": ("vgg", {"ratio": 0.9}, {"ratio": 0.9, "min_channels": 6}),
    },
    "sfp": {
        "ratio": ("resnet", {}, {"ratio": 0.5}),
        "layers": ("resnet", {}, {"layers": ["conv1"]}),
        "pretrained": ("resnet", {}, {"pretrained": True}),
        "recalibrate_bn": ("resnet", {}, {"recalibrate_bn": True}),
    },
    "magnitude": {
        "ratio": ("vgg", {"ratio": 0.5}, {"ratio": 0.8}),
        "include_linear": ("vgg", {}, {"include_linear": True}),
        "scope": ("vgg", {}, {"scope": "layer"}),
        "iterative_rounds": ("vgg", {}, {"iterative_rounds": 2, "round_epochs": 1}),
        "iterative": ("vgg", {"iterative_rounds": 2, "round_epochs": 1}, {"iterative_rounds": 2, "iterative": "imp"}),
        "round_epochs": ("vgg", {"iterative_rounds": 2, "round_epochs": 1}, {"iterative_rounds": 2, "round_epochs": 2}),
        "round_recipe": ("vgg", {"iterative_rounds": 2, "round_epochs": 1},
                         {"iterative_rounds": 2, "round_epochs": 1, "round_recipe": {"lr": 0.1}}),
    },
    "thinet": {
        "ratio": ("vgg", {"ratio": 0.3, **SAMPLING}, {"ratio": 0.5, **SAMPLING}),
        "variant": ("vgg16-plan", {"variant": "thinet-conv", **SAMPLING}, {"variant": "thinet-tiny", **SAMPLING}),
        "images": ("vgg", {"ratio": 0.5, **SAMPLING}, {"ratio": 0.5, **SAMPLING, "images": 30}),
        "locations": ("vgg", {"ratio": 0.5, **SAMPLING}, {"ratio": 0.5, **SAMPLING, "locations": 5}),
        "ridge": ("vgg", {"ratio": 0.5, **SAMPLING}, {"ratio": 0.5, **SAMPLING, "ridge": 10.0}),
        "prune_last": ("vgg", {"ratio": 0.5, **SAMPLING}, {"ratio": 0.5, **SAMPLING, "prune_last": True}),
        "finetune_between": ("vgg", {"ratio": 0.5, **SAMPLING}, {"ratio": 0.5, **SAMPLING, "finetune_between": 1}),
        "finetune_lr": ("vgg", {"ratio": 0.5, **SAMPLING, "finetune_between": 1},
                        {"ratio": 0.5, **SAMPLING, "finetune_between": 1, "finetune_lr": 0.05}),
        "batch_size": ("vgg", {"ratio": 0.5, **SAMPLING, "finetune_between": 1},
                       {"ratio": 0.5, **SAMPLING, "finetune_between": 1, "batch_size": 16}),
    },
    "regression": {
        "ratio": ("vgg", {"ratio": 0.3, **SAMPLING}, {"ratio": 0.5, **SAMPLING}),
        "variant": ("vgg16-plan", {"ratio": 0.5, **SAMPLING}, {"variant": "vgg16-5x", **SAMPLING}),
        "images": ("vgg", {"ratio": 0.5, **SAMPLING}, {"ratio": 0.5, **SAMPLING, "images": 30}),
        "locations": ("vgg", {"ratio": 0.5, **SAMPLING}, {"ratio": 0.5, **SAMPLING, "locations": 5}),
        "ridge": ("vgg", {"ratio": 0.5, **SAMPLING}, {"ratio": 0.5, **SAMPLING, "ridge": 10.0}),
        "path_steps": ("vgg", {"ratio": 0.5, **SAMPLING}, {"ratio": 0.5, **SAMPLING, "path_steps": 2}),
        "prune_last": ("vgg", {"ratio": 0.5, **SAMPLING}, {"ratio": 0.5, **SAMPLING, "prune_last": True}),
        # the ImageNet ResNets' compensation (a CIFAR option-A block has a functional shortcut: nothing to compensate)
        "residual_compensation": ("bottleneck", {"ratio": 0.5, **SAMPLING},
                                  {"ratio": 0.5, **SAMPLING, "residual_compensation": False}),
        "input_selection": ("bottleneck", {"ratio": 0.5, **SAMPLING}, {"ratio": 0.5, **SAMPLING, "input_selection": True}),
        "batch_size": ("vgg", {"ratio": 0.5, **SAMPLING}, {"ratio": 0.5, **SAMPLING, "batch_size": 3}),
    },
    "sss": {
        "penalty": ("resnet", {}, {"penalty": 0.1}),
        "momentum": ("resnet", {}, {"momentum": 0.5}),
        "keep_blocks": ("resnet", {}, {"keep_blocks": 1}),
        # an untrained net's gates are not zero: named layouts only run when forced
        "variant": ("resnet50", {"variant": "resnet41", "forced": True}, {"variant": "resnet26", "forced": True}),
        "forced": ("resnet", {"keep_blocks": 1, "forced": True}, {"keep_blocks": 1, "forced": False}),
        "finetune": ("resnet", {}, {"finetune": True}),
    },
    "uniform": {
        "target": ("resnet", {"match": 0.2}, {"match": 0.2, "target": "flops"}),
        "match": ("resnet", {"match": 0.5}, {"match": 0.3}),
        "reference_spec": ("resnet", {"match": 0.5},
                           {"reference_spec": json.dumps(spec_config(RESNET.scaled(0.5)))}),
        "rounding": ("resnet", {"match": 0.5}, {"match": 0.5, "rounding": "nearest"}),
        "inner_only": ("resnet", {"match": 0.5, "rounding": "nearest"}, {"match": 0.5, "rounding": "nearest", "inner_only": True}),
    },
}


@functools.cache
def _splits(size: int = 8) -> Any:
    """Digits, zero-padded to `size` px for the ImageNet-shaped nets (their pools need the room)."""
    s = load("digits", val_size=0, train_subset=300)
    if size == s.info.input_size:
        return s
    pad = (size - s.info.input_size) // 2
    return dataclasses.replace(s, train_x=torch.nn.functional.pad(s.train_x, (pad,) * 4),
                               info=dataclasses.replace(s.info, input_size=size))  # fmt: skip


def _no_timings(x: Any) -> Any:
    """A method's `info` without wall-clock timings (the rest is a result: λ path, errors, counts)."""
    if isinstance(x, dict):
        return {k: _no_timings(v) for k, v in x.items() if k != "timings"}
    return x


def _model(key: str, spec: Any) -> nn.Module:
    seed_everything(0)
    model = spec.build()
    with torch.no_grad():  # trained-looking BN scales: slimming's γ and SFP's constants differ per channel
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.0, 1.0)
                m.bias.uniform_(-0.5, 0.5)
            if hasattr(m, "gate"):
                m.gate.weight.fill_(float(torch.rand(())))
    return model


def _plan(name: str, options: dict[str, Any]) -> Any:
    text = f"""
name = "effect"
seeds = [0]
[data]
name = "fashion-mnist"
[model]
variant = "resnet20"
width_mult = 0.25
[[methods]]
name = "{name}"
options = {json.dumps(options)}
[arms]
unpruned = true
unpruned_plain = true
scratch_e = true
[recipes.large]
epochs = 2
lr = 0.1
[recipes.finetune]
epochs = 1
lr = 0.01
"""
    try:
        plan = expand(parse_preset(tomllib.loads(text.replace(": ", " = ")), "effect.toml"))
    except PrunebenchError as e:
        return ("plan refused", str(e).split(":")[-1])
    return sorted(s.kind for s in plan.stages)


def _effect(name: str, model_key: str, options: dict[str, Any]) -> dict[str, Any]:
    """What the method does with `options`, or why it refuses them."""
    method = get_method(name)
    try:
        opts = method.parse_options(options)
    except ConfigError as e:
        return {"refused": str(e)}
    spec = method.prepare_large(MODELS[model_key](), opts)
    out: dict[str, Any] = {
        "large_training": callback_fingerprint(method.large_training(opts, spec)),
        "large_spec": spec_config(spec),
        "finetune": method.finetune(opts, BASE_RECIPE),
        "plan": _plan(name, options) if model_key in ("vgg", "resnet") else None,
    }
    if model_key.endswith("-plan"):
        out["prune"] = _planned_keep(name, spec, opts)
        return out
    try:
        res = method.prune(_model(model_key, spec), _splits(spec.input_size), opts, seed=0)
    except PrunebenchError as e:
        out["prune"] = ("refused", str(e))
        return out
    out["prune"] = {
        "spec": spec_config(attached_spec(res.model)),
        "kept": res.kept,
        "masks": {k: v.tolist() for k, v in (res.masks or {}).items()},
        "weights": {k: v.detach().clone() for k, v in res.model.state_dict().items()},
        "info": _no_timings(json.loads(json.dumps(res.info, default=str))),
    }
    return out


def _planned_keep(name: str, spec: Any, opts: Any) -> dict[str, int]:
    """The per-layer keep counts L1-norm / ThiNet / regression resolve from a ratio or a named target."""
    from prunebench.prune.activations import plan_layers
    from prunebench.prune.base import removed_from_kept
    from prunebench.prune.l1norm import variant_targets

    if name == "l1norm":
        return variant_targets(spec.build(), opts.variant)

    targets = importlib.import_module(f"prunebench.prune.{name}").TARGETS
    ratio = None if opts.ratio is None else removed_from_kept(opts.ratio)
    return plan_layers(spec, ratio=ratio, target_name=opts.variant, eligible=lambda g: g.kind == "out", allowed=targets).keep


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape and bool(
            torch.allclose(a.float(), b.float(), atol=1e-5)
        )
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-8)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


FIELDS = [(name, f.name) for name in list_methods() for f in dataclasses.fields(get_method(name).Options)]


def test_every_option_of_every_registered_method_has_a_case() -> None:
    missing = [f"{m}.{f}" for m, f in FIELDS if f not in CASES.get(m, {})]
    assert not missing, f"options without an effect case: {', '.join(missing)}"


@pytest.mark.parametrize(("name", "field"), FIELDS, ids=[f"{m}.{f}" for m, f in FIELDS])
def test_option_acts_or_is_refused(name: str, field: str) -> None:
    model_key, base, changed = CASES[name][field]
    assert field not in base or base[field] != changed[field]
    before, after = _effect(name, model_key, base), _effect(name, model_key, changed)
    assert "refused" not in before and not isinstance(before["prune"], tuple), before  # the base case runs
    if field in get_method(name).execution_options:
        assert "refused" not in after and _same(before, after), f"{name}.{field} only decides speed, yet changed the result"
    else:
        assert "refused" in after or not _same(before, after), f"{name}.{field} was accepted and ignored"


def test_dense_reinit_is_refused_for_physically_pruned_scratch_arms() -> None:
    """`scratch_reinit` redraws masked weights; it used to change the identity of physical arms and do nothing."""
    def preset(options: str, arms: str) -> Any:
        text = tiny_preset("reinit", quiet=False, train_subset=None, test_subset=None, options=options, arms=(),
                           arms_extra=(arms, 'scratch_reinit = "dense"'), large=("epochs = 2", "lr = 0.1"))  # fmt: skip
        return parse_preset(tomllib.loads(text), "reinit.toml")

    for arms in ("scratch_e = true", "scratch_b = true", "winning_ticket = true\nrandom_ticket = true"):
        with pytest.raises(ConfigError, match="scratch_reinit"):
            expand(preset("ratio = 0.5", arms))
    # the exact mask form of structured pruning takes it: the reference's dense fan-out lottery-L1 init
    plan = expand(preset("ratio = 0.5, mask_form = true", "winning_ticket = true\nrandom_ticket = true"))
    assert {s.config["reinit"] for s in plan.stages if s.kind == "random_ticket"} == {"dense"}



def test_execution_options_stay_out_of_stage_identities() -> None:
    def prune_ids(options: str) -> set[str]:
        text = tiny_preset("ids", quiet=False, train_subset=None, test_subset=None, method="regression", options=options,
                           arms=("pruned_no_ft",), large=("epochs = 2", "lr = 0.1"))  # fmt: skip
        plan = expand(parse_preset(tomllib.loads(text), "ids.toml"))
        return {s.id for s in plan.stages if s.kind == "prune"}

    assert prune_ids("ratio = 0.5") == prune_ids("ratio = 0.5, batch_size = 16") != prune_ids("ratio = 0.5, images = 50")
