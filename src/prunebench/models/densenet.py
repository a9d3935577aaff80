"""DenseNet with channel selection (docs/protocol.md §3.7-§3.8, docs/methods.md §5.4).

Every BN (dense layer, transition, final) is followed by a selection layer, so
pruning changes what a layer reads, never a conv's output width.  The
transition pool, the concatenation and flatten are functional (not counted by
the reference-mode counter); the head pool is a module.
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
from prunebench.models.layers import (
    ChannelSelection,
    SelectHeadNet,
    bn_members,
    check_selection,
    compose_selections,
    out_width,
    read_selection,
    selection_of,
)
from prunebench.models.spec import ChannelGroup, check_positive, normalize_kept, register_family, scale_width


class DenseLayer(nn.Module):
    """BN -> select -> ReLU -> conv3x3 (basic) or conv1x1 -> BN -> ReLU -> conv3x3 (bottleneck); concat."""

    def __init__(self, cin: int, sel: tuple[int, ...], growth: int, inner: int | None) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.select = ChannelSelection(sel)
        self.relu = nn.ReLU(inplace=True)
        if inner is None:
            self.conv1 = nn.Conv2d(len(sel), growth, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(len(sel), inner, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(inner)
            self.conv2 = nn.Conv2d(inner, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu(self.select(self.bn1(x))))
        if hasattr(self, "conv2"):
            out = self.conv2(self.relu(self.bn2(out)))
        return torch.cat([x, out], 1)


class Transition(nn.Module):
    def __init__(self, cin: int, sel: tuple[int, ...], cout: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.select = ChannelSelection(sel)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(len(sel), cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv(self.relu(self.select(self.bn(x)))), 2)  # functional, as the reference


class DenseNet(SelectHeadNet):
    def __init__(self, spec: DenseNetSpec) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(spec.in_channels, spec.stem, 3, 1, 1, bias=False)
        fulls, sels = iter(spec.read_widths()), iter(spec.selections)
        inner = iter(spec.inner) if spec.bottleneck else None
        self.n_blocks = len(spec.layers)
        for d, n in enumerate(spec.layers):
            layers = []
            for _ in range(n):
                cin = next(fulls)
                sel = selection_of(next(sels), cin)
                layers.append(DenseLayer(cin, sel, spec.growth, next(inner) if inner else None))
            self.add_module(f"dense{d + 1}", nn.Sequential(*layers))
            if d + 1 < self.n_blocks:
                cin = next(fulls)
                sel = selection_of(next(sels), cin)
                self.add_module(f"trans{d + 1}", Transition(cin, sel, cin // spec.compression_rate))
        cin = next(fulls)
        self.add_head(cin, next(sels), spec.final_size(), spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        for d in range(self.n_blocks):
            x = getattr(self, f"dense{d + 1}")(x)
            if d + 1 < self.n_blocks:
                x = getattr(self, f"trans{d + 1}")(x)
        return self.head(x)


@register_family
@dataclass(frozen=True, kw_only=True)
class DenseNetSpec(InitSpec):
    """DenseNet: `layers` per dense block, `growth`, transitions keep C // compression_rate.

    bottleneck: BC-style layers whose 1x1 conv widths are `inner` (one per layer).
    selections: one per dense layer, transition and the final BN, in forward
      order, as indices into that BN's full width; () means all channels.
    """

    family = "densenet"
    layers: tuple[int, ...] = (12, 12, 12)
    growth: int = 12
    stem: int = 24
    bottleneck: bool = False
    inner: tuple[int, ...] = ()
    compression_rate: int = 1
    selections: tuple[tuple[int, ...], ...] = ()

    @classmethod
    def uniform(cls, layers: tuple[int, ...], growth: int = 12, *, bottleneck: bool = False, **kw: Any) -> DenseNetSpec:
        """Unpruned network; bottleneck layers get 4 x growth inner channels."""
        n_sel = sum(layers) + len(layers)
        inner = (4 * growth,) * sum(layers) if bottleneck else ()
        return cls(layers=layers, growth=growth, stem=2 * growth, bottleneck=bottleneck, inner=inner,
                   selections=((),) * n_sel, **kw)

    # -- geometry -------------------------------------------------------------------
    def _points(self) -> list[tuple[str, int]]:
        """(module path, stage) of every selection point in forward order."""
        out = []
        for d, n in enumerate(self.layers):
            out += [(f"dense{d + 1}.{i}", d) for i in range(n)]
            if d + 1 < len(self.layers):
                out.append((f"trans{d + 1}", d))
        return [*out, ("", len(self.layers) - 1)]

    def read_widths(self) -> list[int]:
        """Full width read at each selection point (dense layers, transitions, final)."""
        widths, c = [], self.stem
        for d, n in enumerate(self.layers):
            for _ in range(n):
                widths.append(c)
                c += self.growth
            if d + 1 < len(self.layers):
                widths.append(c)
                c //= self.compression_rate
        return [*widths, c]

    def final_size(self) -> int:
        return self.input_size >> (len(self.layers) - 1)

    # -- contract ---------------------------------------------------------------------
    def validate(self) -> None:
        super().validate()
        check_positive(self.label, "layers per block", self.layers)
        check_positive(self.label, "growth, stem and compression rate", (self.growth, self.stem, self.compression_rate))
        check_positive(self.label, "bottleneck widths", self.inner)
        n_inner = sum(self.layers) if self.bottleneck else 0
        if len(self.inner) != n_inner:
            raise SpecError(f"{self.label}: need {n_inner} bottleneck widths, got {len(self.inner)}")
        n_sel = sum(self.layers) + len(self.layers)
        if len(self.selections) != n_sel:
            raise SpecError(f"{self.label}: need {n_sel} selection entries, got {len(self.selections)}")
        widths = self.read_widths()
        if min(widths) < 1:
            raise SpecError(f"{self.label}: compression leaves a transition with 0 channels")
        for k, (sel, full) in enumerate(zip(self.selections, widths, strict=True)):
            check_selection(self.label, k, sel, full)
        pools = len(self.layers) - 1
        if self.final_size() < 1:
            raise SpecError(
                f"{self.label} needs input >= {2**pools} px: {pools} transition pools reduce {self.input_size} px to 0"
            )

    def build(self) -> nn.Module:
        return self.finish(DenseNet(self))

    def groups(self) -> list[ChannelGroup]:
        out = []
        inner = iter(self.inner)
        for (path, stage), sel, full in zip(self._points(), self.selections, self.read_widths(), strict=True):
            prefix = f"{path}." if path else ""
            if not path:
                bn, consumer = "bn", "fc"
            elif path.startswith("trans"):
                bn, consumer = f"{path}.bn", f"{path}.conv"
            else:
                bn, consumer = f"{path}.bn1", f"{path}.conv1"
            out.append(ChannelGroup(
                name=f"{prefix}select", kind="select", size=len(selection_of(sel, full)), producer=None, bn=bn,
                consumers=(consumer,), members=((f"{consumer}.weight", 1, 1),), stage=stage,
            ))
            if self.bottleneck and path.startswith("dense"):
                members = ((f"{path}.conv1.weight", 0, 1), *bn_members(f"{path}.bn2"), (f"{path}.conv2.weight", 1, 1))
                out.append(ChannelGroup(
                    name=f"{path}.conv1", kind="out", size=next(inner), producer=f"{path}.conv1", bn=f"{path}.bn2",
                    consumers=(f"{path}.conv2",), members=members, stage=stage,
                ))
        return out

    def _layer_paths(self) -> list[str]:
        return [p for p, _ in self._points() if p.startswith("dense")]

    def with_kept(self, kept: dict[str, list[int]]) -> DenseNetSpec:
        norm = normalize_kept(self.groups(), kept)
        names = [f"{p}.select" if p else "select" for p, _ in self._points()]
        sels = compose_selections(names, self.selections, self.read_widths(), norm)
        inner = tuple(len(norm.get(f"{p}.conv1", range(w))) for p, w in zip(self._layer_paths(), self.inner))
        return dataclasses.replace(self, selections=sels, inner=inner)

    def widths(self) -> list[Any]:
        return [len(selection_of(s, f)) for s, f in zip(self.selections, self.read_widths(), strict=True)]

    def scaled(self, factor: float, *, inner_only: bool = False) -> DenseNetSpec:
        inner = tuple(scale_width(w, factor) for w in self.inner)
        if inner_only:
            return dataclasses.replace(self, inner=inner)
        return dataclasses.replace(  # new full widths: selections reset to "all"
            self, inner=inner, growth=scale_width(self.growth, factor), stem=scale_width(self.stem, factor),
            selections=((),) * len(self.selections),
        )

    def from_module(self, module: nn.Module) -> DenseNetSpec:
        sels = []
        for path, _ in self._points():
            owner = module.get_submodule(path) if path else module
            bn = owner.get_submodule("bn" if hasattr(owner, "bn") else "bn1")
            sels.append(read_selection(owner.get_submodule("select"), out_width(bn)))
        paths = self._layer_paths() if self.bottleneck else []
        inner = tuple(out_width(module.get_submodule(f"{p}.conv1")) for p in paths)
        return dataclasses.replace(
            self, selections=tuple(sels), inner=inner, stem=out_width(module.get_submodule("conv1")),
            num_classes=out_width(module.get_submodule("fc")),
        )
