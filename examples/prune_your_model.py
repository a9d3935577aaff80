"""Prune your own model: is pruning worth it, or does the small architecture train as well from scratch?

    python examples/prune_your_model.py            # about a minute on a laptop CPU
    python examples/prune_your_model.py --quick    # a few seconds (what the tests run)

`build_model` is any module-level function returning a fresh `nn.Module`; prunebench traces it with
Torch-Pruning's dependency graph (residual sums, concatenations and grouped convs stay consistent),
prunes it with L1-norm, fine-tunes it and trains Scratch-E/B controls of the pruned architecture.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

import prunebench as pb


class SmallResNet(nn.Module):
    """A stem and two residual blocks; the block widths are tied by the sums."""

    def __init__(self, width: int = 8, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                          nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
            for _ in range(2)
        )  # fmt: skip
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.stem(x)))
        for block in self.blocks:
            x = F.relu(x + block(x))  # a residual sum: the stem's width is tied to every block output
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def build_model() -> nn.Module:
    return SmallResNet()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed pair, two epochs, a data subset")
    parser.add_argument("--out", default=None, help="experiment folder (default: a new temporary one)")
    args = parser.parse_args()
    quick = dict(seeds=2, epochs=1, train_subset=192, test_subset=100) if args.quick else dict(seeds=3, epochs=10)
    result = pb.compare(
        build_model, data="digits", method="l1norm", amount=0.5,
        example_input=torch.randn(1, 1, 8, 8), out=args.out, **quick,  # type: ignore[arg-type]
    )  # fmt: skip
    print(result.table())
    print(f"full report: {result.report}")


if __name__ == "__main__":
    main()
