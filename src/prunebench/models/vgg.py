"""VGG for CIFAR and ImageNet (docs/protocol.md §3.1-§3.3), built from a cfg list.

Module layout: `features` (Conv2d [BN2d] ReLU ... MaxPool2d) and `classifier`.
The "avg" head pool is functional, as the reference's inline pool, so the
reference-mode FLOPs counter does not see it; at 32 px it equals the 2x2 pool.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from prunebench.errors import SpecError
from prunebench.models.init import InitSpec
from prunebench.models.layers import bn_members
from prunebench.models.spec import ChannelGroup, check_positive, normalize_kept, register_family, scale_width

POOL = "M"
HEADS = ("linear", "fc-bn", "fc-dropout", "slim-fc")
HEAD_POOLS = ("avg", "flatten")


class VGG(nn.Module):
    def __init__(self, features: nn.Sequential, classifier: nn.Sequential, head_pool: str) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.head_pool = head_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.head_pool == "avg":
            x = F.adaptive_avg_pool2d(x, 1)  # functional on purpose: not counted in reference mode
        return self.classifier(torch.flatten(x, 1))


@register_family
@dataclass(frozen=True, kw_only=True)
class VGGSpec(InitSpec):
    """A VGG: conv widths with "M" for max-pools, a head and its hidden FC widths.

    head: "linear" (one Linear), "fc-bn" (Linear-BN1d-ReLU-Linear, the L1 VGG-16),
      "fc-dropout" (Linear-ReLU-Dropout per hidden width, torchvision),
      "slim-fc" (Linear-BN1d-ReLU per hidden width, slimming VGG-11; the hidden
      FCs are prunable groups).
    head_pool: "avg" = functional global average pool, "flatten" = flatten the map.
    """

    family = "vgg"
    cfg: tuple[Any, ...] = (64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL, 512, 512, 512)
    batch_norm: bool = True
    conv_bias: bool = False
    head: str = "linear"
    hidden: tuple[int, ...] = ()
    head_pool: str = "avg"
    dropout: float = 0.5

    # -- geometry -------------------------------------------------------------------
    def convs(self) -> list[int]:
        return [v for v in self.cfg if v != POOL]

    def final_size(self) -> int:
        return self.input_size >> sum(1 for v in self.cfg if v == POOL)

    def _feature_layout(self) -> list[tuple[int, int | None, int]]:
        """(conv index, BN index or None, stage) of each conv inside `features`."""
        out, i, stage = [], 0, 0
        for v in self.cfg:
            if v == POOL:
                i, stage = i + 1, stage + 1
                continue
            bn = i + 1 if self.batch_norm else None
            out.append((i, bn, stage))
            i += 3 if self.batch_norm else 2
        return out

    def _head_layout(self) -> list[tuple[int, int | None]]:
        """(Linear index, BN1d index or None) of each hidden FC inside `classifier`."""
        has_bn = self.head in ("fc-bn", "slim-fc")  # every hidden FC is 3 modules: Linear + 2
        return [(3 * k, 3 * k + 1 if has_bn else None) for k in range(len(self.hidden))]

    # -- contract ---------------------------------------------------------------------
    def validate(self) -> None:
        super().validate()
        if not self.cfg or self.cfg[0] == POOL:
            raise SpecError(f"{self.label}: cfg must start with a conv width")
        check_positive(self.label, "conv widths", tuple(v for v in self.cfg if v != POOL))
        check_positive(self.label, "hidden FC widths", self.hidden)
        if self.head not in HEADS:
            raise SpecError(f"{self.label}: head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.head_pool not in HEAD_POOLS:
            raise SpecError(f"{self.label}: head_pool must be 'avg' or 'flatten', got {self.head_pool!r}")
        if self.head == "linear" and self.hidden:
            raise SpecError(f"{self.label}: the 'linear' head has no hidden widths, got {list(self.hidden)}")
        if self.head == "fc-bn" and len(self.hidden) != 1:
            raise SpecError(f"{self.label}: the 'fc-bn' head needs exactly one hidden width")
        if self.head in ("fc-dropout", "slim-fc") and not self.hidden:
            raise SpecError(f"{self.label}: the {self.head!r} head needs hidden widths")
        pools = sum(1 for v in self.cfg if v == POOL)
        if self.final_size() < 1:
            raise SpecError(
                f"{self.label} needs input >= {2**pools} px: {pools} max-pools reduce {self.input_size} px to 0"
            )

    def build(self) -> nn.Module:
        layers: list[nn.Module] = []
        cin = self.in_channels
        for v in self.cfg:
            if v == POOL:
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(cin, v, 3, padding=1, bias=self.conv_bias))
            if self.batch_norm:
                layers.append(nn.BatchNorm2d(v))
            layers.append(nn.ReLU(inplace=True))
            cin = v
        feat = cin * self._spatial()
        head: list[nn.Module] = []
        for h in self.hidden:
            head.append(nn.Linear(feat, h))
            if self.head in ("fc-bn", "slim-fc"):
                head += [nn.BatchNorm1d(h), nn.ReLU(inplace=True)]
            else:
                head += [nn.ReLU(inplace=True), nn.Dropout(self.dropout)]
            feat = h
        head.append(nn.Linear(feat, self.num_classes))
        return self.finish(VGG(nn.Sequential(*layers), nn.Sequential(*head), self.head_pool))

    def _spatial(self) -> int:
        """Input columns of the first Linear per channel of the last conv."""
        return 1 if self.head_pool == "avg" else self.final_size() ** 2

    def groups(self) -> list[ChannelGroup]:
        convs, layout = self.convs(), self._feature_layout()
        head = self._head_layout()
        first_fc = "classifier.0"
        out = []
        for k, ((ci, bi, stage), width) in enumerate(zip(layout, convs, strict=True)):
            prod = f"features.{ci}"
            members = [(f"{prod}.weight", 0, 1)]
            if self.conv_bias:
                members.append((f"{prod}.bias", 0, 1))
            if bi is not None:
                members += bn_members(f"features.{bi}")
            if k + 1 < len(layout):
                consumer, rep = f"features.{layout[k + 1][0]}", 1
            else:
                consumer, rep = first_fc, self._spatial()
            members.append((f"{consumer}.weight", 1, rep))
            out.append(ChannelGroup(
                name=prod, kind="out", size=width, producer=prod,
                bn=None if bi is None else f"features.{bi}", consumers=(consumer,),
                members=tuple(members), stage=stage,
            ))
        if self.head == "slim-fc":
            fc_stage = layout[-1][2] + 1  # the head counts as one stage after the last conv
            for k, ((li, bi), width) in enumerate(zip(head, self.hidden, strict=True)):
                prod = f"classifier.{li}"
                consumer = f"classifier.{head[k + 1][0]}" if k + 1 < len(head) else f"classifier.{li + 3}"
                members = [(f"{prod}.weight", 0, 1), (f"{prod}.bias", 0, 1)]
                members += bn_members(f"classifier.{bi}")
                members.append((f"{consumer}.weight", 1, 1))
                out.append(ChannelGroup(
                    name=prod, kind="out", size=width, producer=prod, bn=f"classifier.{bi}",
                    consumers=(consumer,), members=tuple(members), stage=fc_stage,
                ))
        return out

    def with_kept(self, kept: dict[str, list[int]]) -> VGGSpec:
        sizes = {name: len(idx) for name, idx in normalize_kept(self.groups(), kept).items()}
        layout = iter(self._feature_layout())
        cfg = tuple(v if v == POOL else sizes.get(f"features.{next(layout)[0]}", v) for v in self.cfg)
        hidden = tuple(sizes.get(f"classifier.{li}", h) for (li, _), h in zip(self._head_layout(), self.hidden))
        return dataclasses.replace(self, cfg=cfg, hidden=hidden)

    def widths(self) -> list[Any]:
        return list(self.cfg) + list(self.hidden)

    def scaled(self, factor: float, *, inner_only: bool = False) -> VGGSpec:
        """Conv and hidden FC widths times `factor` (a VGG has no residual widths, so `inner_only` is moot)."""
        cfg = tuple(v if v == POOL else scale_width(v, factor) for v in self.cfg)
        return dataclasses.replace(self, cfg=cfg, hidden=tuple(scale_width(h, factor) for h in self.hidden))

    def from_module(self, module: nn.Module) -> VGGSpec:
        convs = iter(m.out_channels for m in module.get_submodule("features").children() if isinstance(m, nn.Conv2d))
        linears = [m.out_features for m in module.get_submodule("classifier").children() if isinstance(m, nn.Linear)]
        cfg = tuple(v if v == POOL else next(convs) for v in self.cfg)
        return dataclasses.replace(self, cfg=cfg, hidden=tuple(linears[:-1]), num_classes=linears[-1])
