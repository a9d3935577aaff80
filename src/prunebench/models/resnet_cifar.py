"""CIFAR ResNet with basic blocks and the option-A shortcut (protocol.md §3.4).

The shortcut (subsample, then zero-pad the new channels at the end) is
functional, so the reference-mode FLOPs counter does not see it; the head's
average pool is a module, so it does.
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

SHORTCUTS = ("avgpool", "stride")


def conv_out(size: int, stride: int) -> int:
    """Spatial size after a 3x3/padding-1 (or 1x1/padding-0) conv with `stride`."""
    return (size - 1) // stride + 1


class BasicBlockA(nn.Module):
    def __init__(self, cin: int, width: int, planes: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)  # called twice: counted twice, as in the reference
        self.conv2 = nn.Conv2d(width, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.pad, self.shortcut = stride, planes - cin, shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        sc = x
        if self.stride != 1:
            if self.shortcut == "avgpool":
                sc = F.avg_pool2d(x, self.stride, ceil_mode=True)
            else:
                sc = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            sc = F.pad(sc, (0, 0, 0, 0, 0, self.pad))
        return self.relu(out + sc)


class CifarResNet(nn.Module):
    def __init__(self, spec: CifarResNetSpec) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(spec.in_channels, spec.planes[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(spec.planes[0])
        self.relu = nn.ReLU(inplace=True)
        widths = iter(spec.block_widths)
        cin = spec.planes[0]
        for s, (n, planes) in enumerate(zip(spec.blocks, spec.planes, strict=True)):
            blocks = []
            for b in range(n):
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(BasicBlockA(cin, next(widths), planes, stride, spec.shortcut))
                cin = planes
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.n_stages = len(spec.blocks)
        self.avgpool = nn.AvgPool2d(spec.final_size())
        self.fc = nn.Linear(cin, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        for s in range(self.n_stages):
            x = getattr(self, f"layer{s + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


@register_family
@dataclass(frozen=True, kw_only=True)
class CifarResNetSpec(InitSpec):
    """Depth 6n+2: `blocks` per stage, stage widths `planes`, one conv1 width per block.

    shortcut: option-A subsampling before zero-padding, "avgpool" (2x2 average,
    the L1 reference) or "stride" (take every other pixel).
    """

    family = "resnet_cifar"
    blocks: tuple[int, ...] = (9, 9, 9)
    planes: tuple[int, ...] = (16, 32, 64)
    block_widths: tuple[int, ...] = ()
    shortcut: str = "avgpool"

    def validate(self) -> None:
        super().validate()
        check_positive(self.label, "blocks per stage", self.blocks)
        check_positive(self.label, "stage widths", self.planes)
        check_positive(self.label, "block widths", self.block_widths)
        if len(self.planes) != len(self.blocks):
            raise SpecError(f"{self.label}: {len(self.blocks)} stages but {len(self.planes)} stage widths")
        if len(self.block_widths) != sum(self.blocks):
            raise SpecError(
                f"{self.label}: {sum(self.blocks)} blocks need {sum(self.blocks)} widths, got {len(self.block_widths)}"
            )
        if any(b < a for a, b in zip(self.planes, self.planes[1:])):
            raise SpecError(f"{self.label}: option-A shortcuts can only widen, stage widths {list(self.planes)}")
        if self.shortcut not in SHORTCUTS:
            raise SpecError(f"{self.label}: shortcut must be 'avgpool' or 'stride', got {self.shortcut!r}")

    @classmethod
    def uniform(cls, n: int, *, planes: tuple[int, ...] = (16, 32, 64), **kw: Any) -> CifarResNetSpec:
        """ResNet-(6n+2) with unpruned widths."""
        widths = tuple(p for p in planes for _ in range(n))
        return cls(blocks=(n,) * len(planes), planes=planes, block_widths=widths, **kw)

    def final_size(self) -> int:
        size = self.input_size
        for _ in self.blocks[1:]:
            size = conv_out(size, 2)
        return size

    def block_names(self) -> list[tuple[str, int]]:
        return [(f"layer{s + 1}.{b}", s) for s, n in enumerate(self.blocks) for b in range(n)]

    def build(self) -> nn.Module:
        return self.finish(CifarResNet(self))

    def groups(self) -> list[ChannelGroup]:
        out = []
        for (blk, stage), width in zip(self.block_names(), self.block_widths, strict=True):
            members = ((f"{blk}.conv1.weight", 0, 1), *bn_members(f"{blk}.bn1"), (f"{blk}.conv2.weight", 1, 1))
            out.append(ChannelGroup(
                name=f"{blk}.conv1", kind="out", size=width, producer=f"{blk}.conv1", bn=f"{blk}.bn1",
                consumers=(f"{blk}.conv2",), members=members, stage=stage,
            ))
        return out

    def with_kept(self, kept: dict[str, list[int]]) -> CifarResNetSpec:
        sizes = {name: len(idx) for name, idx in normalize_kept(self.groups(), kept).items()}
        widths = tuple(sizes.get(f"{blk}.conv1", w) for (blk, _), w in zip(self.block_names(), self.block_widths))
        return dataclasses.replace(self, block_widths=widths)

    def widths(self) -> list[int]:
        return list(self.block_widths)

    def scaled(self, factor: float, *, inner_only: bool = False) -> CifarResNetSpec:
        widths = tuple(scale_width(w, factor) for w in self.block_widths)
        planes = self.planes if inner_only else tuple(scale_width(p, factor) for p in self.planes)
        return dataclasses.replace(self, block_widths=widths, planes=planes)

    def from_module(self, module: nn.Module) -> CifarResNetSpec:
        widths = tuple(module.get_submodule(f"{blk}.conv1").out_channels for blk, _ in self.block_names())
        planes = tuple(getattr(module, f"layer{s + 1}")[0].conv2.out_channels for s in range(len(self.blocks)))
        return dataclasses.replace(self, block_widths=widths, planes=planes, num_classes=module.fc.out_features)
