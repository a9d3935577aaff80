"""Parameter counts: total (BN included, buffers excluded), non-zero, prunable."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.measure import count_params


class WithSelection(nn.Module):
    """conv(2→3, bias) → BN → a channel-selection style index buffer → Linear(3 → 4)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, bias=True)
        self.bn = nn.BatchNorm2d(3)
        self.register_buffer("indices", torch.arange(3))
        self.fc = nn.Linear(3, 4)


def test_total_and_prunable_by_hand() -> None:
    pc = count_params(WithSelection())
    conv_w, conv_b, bn, fc_w, fc_b = 2 * 3 * 9, 3, 2 * 3, 3 * 4, 4
    assert pc.total == conv_w + conv_b + bn + fc_w + fc_b == 79  # running stats and indices are buffers
    assert pc.prunable == conv_w + fc_w == 66


def test_nonzero_counts_literal_zeros_without_masks() -> None:
    net = WithSelection()
    with torch.no_grad():
        net.conv.weight[0].zero_()
    # BN β and a fresh conv/linear bias may be zero too, so count them exactly.
    expected = sum(int(torch.count_nonzero(p)) for p in net.parameters())
    assert count_params(net).nonzero == expected <= 79 - 18


def test_nonzero_honours_masks() -> None:
    net = WithSelection()
    mask = torch.zeros(3, 2, 3, 3, dtype=torch.bool)
    mask[1] = True
    pc = count_params(net, {"conv.weight": mask})
    assert pc.nonzero == 79 - 2 * 18  # unmasked parameters count in full
    assert pc.total == 79 and pc.prunable == 66


def test_mask_for_unknown_parameter_is_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown parameter 'conv.w'"):
        count_params(WithSelection(), {"conv.w": torch.ones(1, dtype=torch.bool)})
