"""Named architectures as data (docs/protocol.md §3, docs/methods.md §2-§6).

Every pruned target is resolved to integer widths here; ratios only appear as
the inputs of that resolution, in exact `Fraction` arithmetic (docs/methods.md §1.2).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from fractions import Fraction
from importlib import resources
from typing import Any

from prunebench.errors import SpecError
from prunebench.models.densenet import DenseNetSpec
from prunebench.models.preresnet import PreResNetSpec
from prunebench.models.resnet_cifar import CifarResNetSpec
from prunebench.models.resnet_imagenet import ResNetSpec
from prunebench.models.spec import ModelSpec
from prunebench.models.vgg import POOL, VGGSpec

M = POOL
VGG_CFGS: dict[str, tuple[Any, ...]] = {
    "vgg11": (64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512),
    "vgg13": (64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512),
    "vgg16": (64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512),
    "vgg19": (64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512),
}
VGG16_A = (32, 64, M, 128, 128, M, 256, 256, 256, M, 256, 256, 256, M, 256, 256, 256)
THINET_CONV = (32, 32, M, 64, 64, M, 128, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M)
THINET_GAP = THINET_CONV[:-1]
THINET_TINY = (16, 16, M, 32, 32, M, 64, 64, 64, M, 128, 128, 128, M, 128, 128, 256)
VGG16_5X = (24, 22, M, 41, 51, M, 108, 89, 111, M, 184, 276, 228, M, 512, 512, 512, M)


@dataclass(frozen=True)
class L1Target:
    """An L1-norm A/B target (docs/methods.md §2.4-§2.5): conv ids to skip and the prune ratio per stage.

    Conv ids follow the reference: 1 = stem, 2 + 2j = conv1 of block j.
    """

    base: str
    skip: tuple[int, ...]
    ratios: tuple[str, ...]  # decimal strings, read as exact fractions


L1_TARGETS: dict[str, L1Target] = {
    "resnet56-a": L1Target("resnet56", (16, 20, 38, 54), ("0.1", "0.1", "0.1")),
    "resnet56-b": L1Target("resnet56", (16, 18, 20, 34, 38, 54), ("0.6", "0.3", "0.1")),
    "resnet110-a": L1Target("resnet110", (36,), ("0.5", "0.0", "0.0")),
    "resnet110-b": L1Target("resnet110", (36, 38, 74), ("0.5", "0.4", "0.3")),
    "resnet34-a": L1Target("resnet34", (2, 8, 14, 16, 26, 28, 30, 32), ("0.3", "0.3", "0.3", "0.0")),
    "resnet34-b": L1Target("resnet34", (2, 8, 14, 16, 26, 28, 30, 32), ("0.5", "0.6", "0.4", "0.0")),
}
#: ThiNet-r keeps floor(C * r) of every bottleneck's conv1 and conv2 (docs/methods.md §3.4)
THINET_KEEP = {"thinet-30": "0.3", "thinet-50": "0.5", "thinet-70": "0.7"}
#: ResNet-50-2x per-block (conv1 out, conv2 out); the selections come from models/data (docs/methods.md §4.4)
RESNET50_2X_INNER = (
    (64, 55), (51, 39), (50, 37),
    (128, 106), (105, 72), (105, 72), (128, 110),
    (256, 225), (209, 147), (204, 158), (212, 155), (211, 148), (256, 213),
    (512, 433), (512, 437), (512, 440),
)
RESNET50_2X_READ = (35, 101, 97, 144, 205, 198, 288, 278, 418, 407, 423, 412, 595, 606, 1222, 1147)
#: SSS units per stage: (residual blocks kept, does the first block keep its branch) (docs/methods.md §6.2)
SSS_UNITS = {
    "resnet41": ((0, False), (4, True), (6, True), (3, True)),
    "resnet32": ((1, False), (4, True), (4, True), (1, True)),
    "resnet26": ((0, False), (2, False), (5, False), (1, True)),
}


def l1_keep(width: int, ratio: str) -> int:
    """keep = int(C * (1 - p)), exactly (no float rounding below the intended integer)."""
    return int(width * (1 - Fraction(ratio)))


def resolve_l1(base: ModelSpec, target: L1Target) -> dict[str, int]:
    """Group name -> kept width of an L1 target, from the base's block-conv1 groups."""
    out = {}
    for j, g in enumerate(base.groups()):
        conv_id = 2 + 2 * j
        out[g.name] = g.size if conv_id in target.skip else l1_keep(g.size, target.ratios[g.stage])
    return out


def _l1_spec(target: L1Target, **kw: Any) -> ModelSpec:
    base = _VARIANTS[target.base].make(**kw)
    widths = resolve_l1(base, target)
    return base.with_kept({name: list(range(w)) for name, w in widths.items()})


# -- families' base constructors -------------------------------------------------------
def _cifar_vgg(cfg: tuple[Any, ...], head: str = "linear", **kw: Any) -> VGGSpec:
    """L1/slimming CIFAR VGG: no conv bias, BN gamma 0.5, He fan-out."""
    hidden = (512,) if head == "fc-bn" else ()
    return VGGSpec(cfg=cfg, head=head, hidden=hidden, bn_gamma=0.5, **kw)


def _classification_vgg(cfg: tuple[Any, ...], **kw: Any) -> VGGSpec:
    """pytorch-classification VGG (unstructured pruning): conv bias, fan-in, gamma 1."""
    return VGGSpec(cfg=cfg, conv_bias=True, init="fan_in", bn_gamma=1.0, **kw)


def _imagenet_vgg(cfg: tuple[Any, ...], *, batch_norm: bool = False, head: str = "fc-dropout", **kw: Any) -> VGGSpec:
    """torchvision-layout VGG: conv bias, 4096-4096 dropout head on the flattened map, or a GAP head."""
    if head == "linear":  # ThiNet GAP/Tiny: inline global average pool, then one Linear
        return VGGSpec(cfg=cfg, batch_norm=batch_norm, conv_bias=True, head="linear", head_pool="avg", **kw)
    return VGGSpec(
        cfg=cfg, batch_norm=batch_norm, conv_bias=True, head=head, hidden=(4096, 4096), head_pool="flatten", **kw
    )


def _thinet(keep: str, **kw: Any) -> ResNetSpec:
    base = ResNetSpec.uniform("bottleneck", (3, 4, 6, 3), projection_bias=True, **kw)
    inner = tuple((int(w * Fraction(keep)),) * 2 for w, _ in base.inner)  # floor(C * r), exact
    return base.replace(inner=inner)


def _resnet50_2x(**kw: Any) -> ResNetSpec:
    data = json.loads(resources.files("prunebench.models").joinpath("data/resnet50_2x_selection.json").read_text())
    sels = tuple(tuple(b) for b in data["blocks"])
    for k, (sel, read) in enumerate(zip(sels, RESNET50_2X_READ, strict=True)):
        if len(sel) != read:
            raise SpecError(f"resnet50-2x: block {k} selects {len(sel)} channels, the width spec says {read}")
    return ResNetSpec.uniform("bottleneck", (3, 4, 6, 3), **kw).replace(inner=RESNET50_2X_INNER, selections=sels)


def _sss(units: tuple[tuple[int, bool], ...], **kw: Any) -> ResNetSpec:
    return ResNetSpec.uniform(
        "bottleneck", tuple(n for n, _ in units), first_residual=tuple(b for _, b in units), **kw
    )


@dataclass(frozen=True)
class Variant:
    """A named architecture: how to make its spec for a given input shape."""

    name: str
    dataset: str  # "cifar" or "imagenet": sets the default classes / input size
    make: Callable[..., ModelSpec]  # called with num_classes, in_channels, input_size, name
    description: str


_CIFAR_RESNETS = {"resnet20": 3, "resnet32-cifar": 5, "resnet56": 9, "resnet110": 18, "resnet50-cifar": 8}
_ALL: list[Variant] = [
    # CIFAR VGG (docs/protocol.md §3.2)
    *[
        Variant(n, "cifar", partial(_cifar_vgg, c), f"CIFAR {n.upper()}-BN, one Linear head, gamma 0.5 (slimming)")
        for n, c in VGG_CFGS.items()
    ],
    Variant("vgg16-l1", "cifar", partial(_cifar_vgg, VGG_CFGS["vgg16"], head="fc-bn"),
            "CIFAR VGG-16-BN with the Linear-BN1d-ReLU-Linear head (L1-norm base)"),
    Variant("vgg16-a", "cifar", partial(_cifar_vgg, VGG16_A, head="fc-bn"), "L1-norm VGG-16-A (docs/methods.md §2.3)"),
    Variant("vgg19-bn-unstructured", "cifar", partial(_classification_vgg, VGG_CFGS["vgg19"]),
            "pytorch-classification VGG-19-BN: conv bias, fan-in, gamma 1"),
    Variant("vgg16-bn-unstructured", "cifar", partial(_classification_vgg, VGG_CFGS["vgg16"]),
            "pytorch-classification VGG-16-BN: conv bias, fan-in, gamma 1"),
    # ImageNet VGG (docs/protocol.md §3.3, docs/methods.md §3.3, §4.3)
    Variant("vgg11-slim-imagenet", "imagenet",
            partial(_imagenet_vgg, (*VGG_CFGS["vgg11"], M), batch_norm=True, head="slim-fc", bn_gamma=0.5),
            "ImageNet VGG-11-BN with the BN1d FC head of slimming, gamma 0.5"),
    Variant("vgg16-imagenet", "imagenet", partial(_imagenet_vgg, (*VGG_CFGS["vgg16"], M)),
            "ImageNet VGG-16 without BN (ThiNet / regression base)"),
    Variant("vgg16-bn-imagenet", "imagenet", partial(_imagenet_vgg, (*VGG_CFGS["vgg16"], M), batch_norm=True),
            "torchvision VGG-16-BN (unstructured base)"),
    Variant("thinet-conv", "imagenet", partial(_imagenet_vgg, THINET_CONV), "ThiNet VGG-Conv: conv1-4 at half width"),
    Variant("thinet-gap", "imagenet", partial(_imagenet_vgg, THINET_GAP, head="linear"),
            "ThiNet VGG-GAP: the VGG-Conv convs, global average pool, one Linear"),
    Variant("thinet-tiny", "imagenet", partial(_imagenet_vgg, THINET_TINY, head="linear"), "ThiNet VGG-Tiny"),
    Variant("vgg16-5x", "imagenet", partial(_imagenet_vgg, VGG16_5X), "regression-pruned VGG-16-5x (docs/methods.md §4.3)"),
    # CIFAR ResNet (docs/protocol.md §3.4)
    *[
        Variant(n, "cifar", partial(CifarResNetSpec.uniform, k), f"CIFAR ResNet-{6 * k + 2}, basic, option-A shortcut")
        for n, k in _CIFAR_RESNETS.items()
    ],
    # PreResNet and DenseNet (docs/protocol.md §3.5-§3.8)
    Variant("preresnet164", "cifar", partial(PreResNetSpec.uniform, "bottleneck", 18, bn_gamma=0.5),
            "PreResNet-164 (bottleneck x18 per stage, selection), gamma 0.5 (slimming)"),
    Variant("preresnet110-bottleneck12", "cifar", partial(PreResNetSpec.uniform, "bottleneck", 12),
            "what the reference built for --depth 110: bottleneck x12, gamma 1"),
    Variant("preresnet110-basic18", "cifar", partial(PreResNetSpec.uniform, "basic", 18),
            "He et al.'s PreResNet-110: basic x18, gamma 1"),
    Variant("densenet40", "cifar", partial(DenseNetSpec.uniform, (12, 12, 12), bn_gamma=0.5),
            "DenseNet-40 (k=12, basic layers, selection), gamma 0.5 (slimming)"),
    Variant("densenet100-basic-c0.5", "cifar", partial(DenseNetSpec.uniform, (32, 32, 32), compression_rate=2),
            "what the reference built for DenseNet-BC-100: basic x32, compression 0.5"),
    Variant("densenet-bc-100", "cifar",
            partial(DenseNetSpec.uniform, (16, 16, 16), bottleneck=True, compression_rate=2),
            "true DenseNet-BC-100: bottleneck x16, compression 0.5"),
    # ImageNet ResNet (docs/protocol.md §3.9, docs/methods.md §3.4, §4.4, §6)
    Variant("resnet34", "imagenet", partial(ResNetSpec.uniform, "basic", (3, 4, 6, 3)), "torchvision ResNet-34"),
    Variant("resnet50", "imagenet", partial(ResNetSpec.uniform, "bottleneck", (3, 4, 6, 3)), "torchvision ResNet-50"),
    *[
        Variant(n, "imagenet", partial(_thinet, r), f"ThiNet ResNet-50 target: inner widths x{r}, projection bias")
        for n, r in THINET_KEEP.items()
    ],
    Variant("resnet50-2x", "imagenet", _resnet50_2x,
            "regression-pruned ResNet-50-2x with block-input selection (docs/methods.md §4.4)"),
    *[
        Variant(n, "imagenet", partial(_sss, u), f"SSS target, (blocks, first kept) per stage {u}")
        for n, u in SSS_UNITS.items()
    ],
]
# The L1-norm A/B targets (docs/methods.md §2.4-§2.5), resolved from their base
_ALL += [
    Variant(n, "imagenet" if t.base == "resnet34" else "cifar", partial(_l1_spec, t), f"L1-norm {n} (docs/methods.md §2)")
    for n, t in L1_TARGETS.items()
]
_VARIANTS: dict[str, Variant] = {v.name: v for v in _ALL}


def list_variants() -> list[str]:
    """Every named architecture."""
    return list(_VARIANTS)


def describe_variant(name: str) -> str:
    """One line on what the named architecture is and where it comes from."""
    return _get(name).description


def _get(name: str) -> Variant:
    if name not in _VARIANTS:
        raise SpecError(f"unknown architecture {name!r}; see `prunebench arch --list`")
    return _VARIANTS[name]


def variant(
    name: str,
    info: Any = None,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    input_size: int | None = None,
    width_mult: float = 1.0,
) -> ModelSpec:
    """The spec of a named architecture for a data set's shape.

    `info` may be anything with `num_classes`, `in_channels` and `input_size`
    (a `DatasetInfo` or another spec); keywords override it.  ImageNet variants
    default to 1000 classes when built at 224 px.
    """
    v = _get(name)
    size = input_size if input_size is not None else getattr(info, "input_size", 32)
    default_classes = 1000 if v.dataset == "imagenet" and size == 224 else 10
    spec = v.make(
        num_classes=num_classes if num_classes is not None else getattr(info, "num_classes", default_classes),
        in_channels=in_channels if in_channels is not None else getattr(info, "in_channels", 3),
        input_size=size,
        name=name,
    )
    return spec if width_mult == 1.0 else spec.scaled(width_mult)
