"""FLOPs counters: hand-computed golden values, the two rules side by side, sparse counting."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prunebench.errors import ConfigError, SpecError
from prunebench.measure import COUNTER_VERSION, count_flops, flops_ratio


def with_spec(net: nn.Module, c: int, size: int) -> nn.Module:
    net.spec = SimpleNamespace(in_channels=c, input_size=size)
    return net


def tiny_net(bias: bool) -> nn.Module:
    """conv(1→2, 3×3, pad 1) → BN → ReLU → maxpool 2 → flatten → Linear(18 → 3), on 1×6×6."""
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, bias=bias),
        nn.BatchNorm2d(2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * 3 * 3, 3),
    )
    return with_spec(net, 1, 6)


# Per image, by hand: the conv output is 2×6×6 = 72 elements, the pool output 2×3×3 = 18.
CONV_MACS = (3 * 3 * 1) * 2 * 36  # k·k·Cin · Cout · H·W = 648
LINEAR_MACS = 18 * 3  # 54
NON_CONV = 2 * 72 + 72 + 4 * 18 + (2 * LINEAR_MACS + 3)  # BN, ReLU, pool, linear = 399


@pytest.mark.parametrize(("bias", "expected"), [(False, 2 * CONV_MACS + NON_CONV), (True, 19 * 72 + NON_CONV)])
def test_reference_golden_tiny_net(bias: bool, expected: int) -> None:
    fc = count_flops(tiny_net(bias))
    assert fc.flops == expected == (1695 if not bias else 1767)
    assert fc.macs == CONV_MACS + LINEAR_MACS
    assert (fc.mode, fc.input_shape, fc.counter_version, fc.sparse) == ("reference", (1, 6, 6), COUNTER_VERSION, False)


@pytest.mark.parametrize("bias", [False, True])
def test_dispatch_counts_conv_and_linear_macs_twice(bias: bool) -> None:
    fc = count_flops(tiny_net(bias), mode="dispatch")
    # The dispatcher counts only matmuls and convolutions, 2 FLOPs per MAC, bias adds excluded.
    assert fc.flops == 2 * (CONV_MACS + LINEAR_MACS) and fc.macs == CONV_MACS + LINEAR_MACS
    assert fc.mode == "dispatch" and torch.__version__ in fc.counter_version
    # The reference rule adds BN, ReLU, pooling and the bias adds to the same MACs.
    extra = 2 * 72 + 72 + 4 * 18 + 3 + (72 if bias else 0)
    assert count_flops(tiny_net(bias)).flops == fc.flops + extra


class ModuleRules(nn.Module):
    """Exercises what the reference rule counts (modules) and skips (functional ops, BN1d, dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 1, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout()
        self.fc = nn.Linear(4, 6, bias=False)
        self.bn1d = nn.BatchNorm1d(6)
        self.fc2 = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.conv(x))
        y = self.relu(y + F.avg_pool2d(y, 1))  # functional pool and add: free; the shared ReLU counts twice
        y = self.pool(y).flatten(1)
        return self.fc2(self.bn1d(self.drop(self.fc(y))))


def test_reference_counts_modules_only() -> None:
    fc = count_flops(with_spec(ModuleRules(), 2, 4))
    conv = 2 * 2 * 4 * 16  # 1×1 conv, 4×4 output
    relu = 2 * 64  # two calls of the same module on 4×4×4
    gap = 16 * 4  # an average pool whose kernel is the whole 4×4 map, 4 outputs
    linears = 2 * 4 * 6 + (2 * 6 * 2 + 2)  # no bias on fc; BN1d and dropout are free
    assert fc.flops == conv + relu + gap + linears == 522
    assert count_flops(ModuleRules(), mode="dispatch", input_shape=(2, 4, 4)).flops == conv + 2 * 4 * 6 + 2 * 6 * 2


class FunctionalConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 2, 3, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.w, padding=1)


def test_dispatch_sees_functional_ops_reference_does_not() -> None:
    net = with_spec(FunctionalConv(), 2, 5)
    assert count_flops(net).flops == 0
    assert count_flops(net, mode="dispatch").flops == 2 * (2 * 9 * 3 * 25)


def test_avgpool_module_and_strided_conv() -> None:
    net = with_spec(nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1, bias=False), nn.AvgPool2d(2)), 1, 8)
    # 8×8 → 4×4 conv output → 2×2 pool output; the pool costs 2·2 per output element.
    assert count_flops(net).flops == 2 * 9 * 2 * 16 + 4 * (2 * 4)


def test_counting_leaves_mode_and_bn_statistics_alone() -> None:
    net = tiny_net(False)
    net.train()
    before = net[1].running_mean.clone(), int(net[1].num_batches_tracked)
    count_flops(net)
    count_flops(net, mode="dispatch")
    assert net.training and all(m.training for m in net.modules())
    assert torch.equal(net[1].running_mean, before[0]) and int(net[1].num_batches_tracked) == before[1]


# -- sparse counting ------------------------------------------------------------------


def filter_mask(conv: nn.Conv2d, keep: list[int]) -> torch.Tensor:
    mask = torch.zeros_like(conv.weight, dtype=torch.bool)
    mask[keep] = True
    return mask


def test_sparse_conv_equals_physically_narrower_conv() -> None:
    wide = with_spec(nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False)), 2, 5)
    narrow = with_spec(nn.Sequential(nn.Conv2d(2, 2, 3, padding=1, bias=False)), 2, 5)
    masks = {"0.weight": filter_mask(wide[0], [0, 2])}
    sparse = count_flops(wide, masks=masks)
    assert sparse.sparse and sparse.flops == count_flops(narrow).flops == 2 * 18 * 2 * 25
    assert sparse.macs == 18 * 2 * 25
    # Dispatch mode scales the layer by its weight density (ShrinkBench's rule): the same here.
    assert count_flops(wide, mode="dispatch", masks=masks).flops == count_flops(narrow, mode="dispatch").flops


def test_sparse_with_bias_counts_bias_densely() -> None:
    net = with_spec(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=True)), 1, 4)
    mask = torch.zeros(2, 1, 3, 3, dtype=torch.bool)
    mask[0, 0, :2] = True  # 6 of 18 weights kept
    assert count_flops(net, masks={"0.weight": mask}).flops == (2 * 6 + 1 * 2) * 16


def two_convs(mid: int) -> nn.Module:
    return with_spec(nn.Sequential(
        nn.Conv2d(2, mid, 3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
        nn.Conv2d(mid, 3, 3, padding=1, bias=False),
    ), 2, 6)


def test_masked_sparse_flops_at_least_physical() -> None:
    large = two_convs(4)
    masks = {"0.weight": filter_mask(large[0], [1, 3])}
    masked = count_flops(large, masks=masks).flops
    physical = count_flops(two_convs(2)).flops
    # BN, ReLU and the next conv's input slices stay dense in the masked model.
    assert masked > physical
    assert masked - physical == (2 * 36 * 2) + 36 * 2 + 2 * (2 * 9 * 3 * 36)


def test_sparse_flag_counts_literal_nonzeros() -> None:
    large = two_convs(4)
    mask = filter_mask(large[0], [0])
    with torch.no_grad():
        large[0].weight.mul_(mask)
    assert count_flops(large, sparse=True).flops == count_flops(large, masks={"0.weight": mask}).flops
    assert count_flops(large, sparse=True).flops < count_flops(large).flops


def test_flops_ratio_uses_sparse_counts_for_masks() -> None:
    large = two_convs(4)
    masks = {"0.weight": filter_mask(large[0], [0, 1])}
    r = flops_ratio(large, large, masks)
    assert r > 1  # the reference's weight-level scripts measured two dense models and got exactly 1
    assert r == pytest.approx(count_flops(large).flops / count_flops(large, masks=masks).flops)
    assert flops_ratio(large, large) == 1.0
    assert flops_ratio(large, large, {"0.weight": torch.ones(4, 2, 3, 3, dtype=torch.bool)}) == 1.0
    assert flops_ratio(large, two_convs(2)) > 1


def test_bad_arguments_raise_one_line_errors() -> None:
    net = tiny_net(False)
    with pytest.raises(ConfigError, match="unknown FLOPs mode"):
        count_flops(net, mode="full")
    with pytest.raises(ConfigError, match="unknown parameter"):
        count_flops(net, masks={"nope.weight": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(ConfigError, match="shape"):
        count_flops(net, masks={"0.weight": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(SpecError, match="input_shape"):
        count_flops(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="different input shapes"):
        flops_ratio(two_convs(4), with_spec(two_convs(2), 2, 8))
