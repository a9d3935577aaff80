"""CIFAR ResNet with basic blocks and the option-A shortcut (docs/protocol.md §3.4).

The shortcut (subsample, then zero-pad the new channels at the end) is
functional, so the reference-mode FLOPs counter does not see it; the head's
average pool is a module, so it does.  For SSS the spec has gates and the same
stage layout as the ImageNet family (blocks per stage, first-residual flags).
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
from prunebench.models.layers import Gate, block_paths, bn_members, check_stages, out_width
from prunebench.models.spec import ChannelGroup, check_positive, normalize_kept, register_family, scale_width

SHORTCUTS = ("avgpool", "stride")


def conv_out(size: int, stride: int) -> int:
    """Spatial size after a 3x3/padding-1 (or 1x1/padding-0) conv with `stride`."""
    return (size - 1) // stride + 1


class ShortcutA(nn.Module):
    """Option-A shortcut: subsample, then zero-pad the new channels at the end (no parameters).

    A module only so that both ResNet families name a block's reshaping shortcut
    `downsample`; the work is functional, so reference-mode FLOPs do not count it.
    """

    def __init__(self, stride: int, pad: int, mode: str) -> None:
        super().__init__()
        self.stride, self.pad, self.mode = stride, pad, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            if self.mode == "avgpool":
                x = F.avg_pool2d(x, self.stride, ceil_mode=True)
            else:
                x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.pad)) if self.pad else x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, pad={self.pad}, {self.mode}"


class BasicBlockA(nn.Module):
    def __init__(self, cin: int, width: int, planes: int, stride: int, spec: CifarResNetSpec) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)  # called twice: counted twice, as in the reference
        self.conv2 = nn.Conv2d(width, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or planes != cin:
            self.downsample = ShortcutA(stride, planes - cin, spec.shortcut)
        if spec.gates:
            self.gate = Gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if hasattr(self, "gate"):
            out = self.gate(out)
        sc = self.downsample(x) if hasattr(self, "downsample") else x
        return self.relu(out + sc)


class ShortcutOnly(nn.Module):
    """SSS: a stage's first block whose residual branch was removed; its option-A shortcut stays.

    No ReLU: the block input is already non-negative and subsampling/zero-padding keeps it so.
    """

    def __init__(self, cin: int, planes: int, stride: int, mode: str) -> None:
        super().__init__()
        self.downsample = ShortcutA(stride, planes - cin, mode)
        self.out_channels = planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x)


class CifarResNet(nn.Module):
    def __init__(self, spec: CifarResNetSpec) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(spec.in_channels, spec.planes[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(spec.planes[0])
        self.relu = nn.ReLU(inplace=True)
        widths = iter(spec.block_widths)
        cin = spec.planes[0]
        for s, (n, planes, first) in enumerate(zip(spec.blocks, spec.planes, spec.first_residual, strict=True)):
            stride = 1 if s == 0 else 2
            units: list[nn.Module] = []
            if not first:
                units.append(ShortcutOnly(cin, planes, stride, spec.shortcut))
                cin, stride = planes, 1
            for _ in range(n):
                units.append(BasicBlockA(cin, next(widths), planes, stride, spec))
                cin, stride = planes, 1
            self.add_module(f"layer{s + 1}", nn.Sequential(*units))
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
    """Depth 6n+2: `blocks` per stage, stage widths `planes`, one conv1 width per residual block.

    shortcut: option-A subsampling before zero-padding, "avgpool" (2x2 average,
    the L1 reference) or "stride" (take every other pixel).
    gates: an SSS scale factor on every residual branch.
    first_residual: per stage; False means the stage starts with a shortcut-only unit
      (SSS removed its first residual branch) followed by `blocks[s]` residual blocks.
      Omitted = all True.  Both the flags and `gates` are left out of the JSON at their
      defaults, so pre-SSS specs keep their JSON and run identities.
    """

    family = "resnet_cifar"
    blocks: tuple[int, ...] = (9, 9, 9)
    planes: tuple[int, ...] = (16, 32, 64)
    block_widths: tuple[int, ...] = ()
    shortcut: str = "avgpool"
    gates: bool = False
    first_residual: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        if not self.first_residual:  # spelled out, so code reads it as for the ImageNet family
            object.__setattr__(self, "first_residual", (True,) * len(self.blocks))
        super().__post_init__()

    def validate(self) -> None:
        super().validate()
        check_positive(self.label, "stage widths", self.planes)
        check_positive(self.label, "block widths", self.block_widths)
        if len(self.planes) != len(self.blocks):
            raise SpecError(f"{self.label}: {len(self.blocks)} stages but {len(self.planes)} stage widths")
        # the stem already has stage 1's width, so only the strided stages have a shortcut to keep
        check_stages(self.label, self.blocks, self.first_residual, [s > 0 for s in range(len(self.blocks))])
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
        """(module path, stage) of every residual block."""
        return block_paths(self.blocks, self.first_residual)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        if not self.gates:
            del d["gates"]
        if all(self.first_residual):
            del d["first_residual"]
        return d

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
        blocks = [module.get_submodule(blk) for blk, _ in self.block_names()]
        widths = tuple(out_width(b.get_submodule("conv1")) for b in blocks)
        # a stage's last unit is a residual block or, if the stage has none, its shortcut-only unit
        last = [getattr(module, f"layer{s + 1}")[-1] for s in range(len(self.blocks))]
        planes = tuple(u.out_channels if isinstance(u, ShortcutOnly) else u.conv2.out_channels for u in last)
        return dataclasses.replace(
            self, block_widths=widths, planes=planes, num_classes=out_width(module.get_submodule("fc")),
            gates=any(hasattr(b, "gate") for b in blocks) if blocks else self.gates,
        )
