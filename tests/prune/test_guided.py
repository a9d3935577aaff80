"""Architecture-search builders: guided widths, transfer, uniform and guided sparse masks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from prunebench.errors import ConfigError, SpecError
from prunebench.models import ModelSpec, variant
from prunebench.prune import get_method
from prunebench.prune.analysis import analyse, conv_stages
from prunebench.prune.guided import guided_spec, guided_widths, stage_width_fractions, transfer_fractions
from prunebench.prune.guided_sparse import (
    guided_sparse_masks,
    position_keep_probs,
    stage_sparsity,
    uniform_sparse_masks,
)
from prunebench.prune.uniform import model_size

VGG16 = variant("vgg16", width_mult=0.25)  # 5 stages, widths 16..128
VGG19 = variant("vgg19", num_classes=100, width_mult=0.25)
RESNET20 = variant("resnet20")  # 3 stages of 3 blocks


def _keep_first(spec: ModelSpec, counts: dict[str, int]) -> ModelSpec:
    return spec.with_kept({name: list(range(k)) for name, k in counts.items()})


def _group_sizes(spec: ModelSpec) -> dict[str, tuple[int, int]]:
    return {g.name: (g.size, g.stage) for g in spec.groups()}


# -- guided widths ---------------------------------------------------------------------


def test_stage_fractions_average_the_kept_fractions_of_each_stage() -> None:
    pruned = _keep_first(RESNET20, {"layer1.0.conv1": 4, "layer1.2.conv1": 8, "layer3.1.conv1": 16})
    assert stage_width_fractions(pruned, RESNET20) == pytest.approx([(4 / 16 + 8 / 16 + 1) / 3, 1.0, (2 + 16 / 64) / 3])
    vgg = _keep_first(VGG16, {"features.0": 8, "features.3": 4, "features.40": 32})
    fractions = stage_width_fractions(vgg, VGG16)
    assert fractions == pytest.approx([(8 / 16 + 4 / 16) / 2, 1, 1, 1, (2 + 32 / 128) / 3])
    with pytest.raises(SpecError, match="channel-pruned"):
        stage_width_fractions(RESNET20, VGG16)


@pytest.mark.parametrize("base", [VGG16, RESNET20], ids=["vgg16", "resnet20"])
def test_guided_spec_follows_the_stage_fractions_and_the_parameter_target(base: ModelSpec) -> None:
    n_stages = 1 + max(g.stage for g in base.groups())
    fractions = [1.0 - 0.15 * s for s in range(n_stages)]
    goal = int(model_size(base, "params") * 0.4)
    spec, scale = guided_spec(base, fractions, target_params=goal)
    assert abs(model_size(spec, "params") - goal) / goal < 0.03
    original = _group_sizes(base)
    for name, (width, stage) in _group_sizes(spec).items():
        size = original[name][0]
        assert width == max(1, round(size * fractions[stage] * scale)), name
    if base is RESNET20:
        assert spec.planes == RESNET20.planes  # residual widths are not the guided ones


def test_guided_spec_is_the_closest_to_the_target_of_any_scale() -> None:
    fractions = [0.4, 0.7, 0.9]
    goal = int(model_size(RESNET20, "params") * 0.6)
    spec, _ = guided_spec(RESNET20, fractions, target_params=goal)
    grid = {guided_widths(RESNET20, fractions, k / 100) for k in range(40, 161)}  # brute force near the answer
    best = min(abs(model_size(s, "params") - goal) for s in grid)
    assert abs(model_size(spec, "params") - goal) == best


def test_guided_widths_can_exceed_the_base_widths() -> None:
    wide = guided_widths(VGG16, [1.0, 1.0, 1.0, 1.0, 0.5], 2.0)
    assert wide.widths() == [32, 32, "M", 64, 64, "M", 128, 128, 128, "M", 256, 256, 256, "M", 128, 128, 128]
    resnet = guided_widths(RESNET20, [2.0, 1.0, 0.5], 1.0)
    assert resnet.widths() == [32, 32, 32, 32, 32, 32, 32, 32, 32]
    assert resnet.planes == RESNET20.planes


def test_guided_flops_target_and_checks() -> None:
    goal = int(model_size(RESNET20, "flops") * 0.5)
    spec, _ = guided_spec(RESNET20, [0.5, 0.7, 0.9], target_flops=goal)
    assert abs(model_size(spec, "flops") - goal) / goal < 0.05
    with pytest.raises(ConfigError, match="3 stages but 5 fractions"):
        guided_spec(RESNET20, [1.0] * 5, target_params=10**5)
    with pytest.raises(ConfigError, match="exactly one"):
        guided_spec(RESNET20, [1.0] * 3)
    with pytest.raises(ConfigError, match="positive"):
        guided_widths(RESNET20, [1.0, 0.0, 1.0], 1.0)


def test_transfer_maps_stages_by_relative_depth() -> None:
    vgg16_fractions = [0.9, 0.8, 0.5, 0.3, 0.2]
    assert transfer_fractions(vgg16_fractions, 5) == vgg16_fractions
    assert transfer_fractions(vgg16_fractions, 3) == [0.9, 0.5, 0.2]
    assert transfer_fractions([0.1, 0.2, 0.3], 5) == [0.1, 0.2, 0.2, 0.3, 0.3]  # 0.5 and 1.5 round up
    assert transfer_fractions([0.1, 0.2], 1) == [0.1]
    maps = [[[s] * 3] * 3 for s in range(5)]
    assert transfer_fractions(maps, 3) == [maps[0], maps[2], maps[4]]
    with pytest.raises(ConfigError):
        transfer_fractions([], 3)


def test_transferred_guided_design_vgg16_to_vgg19() -> None:
    pruned16 = _keep_first(VGG16, {"features.30": 40, "features.34": 20, "features.37": 30, "features.40": 10})
    fractions = transfer_fractions(stage_width_fractions(pruned16, VGG16), 5)
    goal = model_size(pruned16, "params") * 2
    spec19, scale = guided_spec(VGG19, fractions, target_params=goal)
    assert spec19.num_classes == 100
    assert abs(model_size(spec19, "params") - goal) / goal < 0.03
    widths = [w for w in spec19.widths() if w != "M"]
    assert widths[-4:] == [max(1, round(128 * fractions[4] * scale))] * 4  # the pruned last stage is thinner
    assert widths[-4] < widths[-5]


# -- sparse masks ----------------------------------------------------------------------


@pytest.mark.parametrize("base", [VGG16, RESNET20], ids=["vgg16", "resnet20"])
def test_uniform_sparse_masks_have_the_exact_density_and_follow_the_seed(base: ModelSpec) -> None:
    model = base.build()
    masks = uniform_sparse_masks(model, 0.3, seed=1)
    convs = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    assert set(masks) == convs
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert mask.dtype == torch.bool and mask.shape == params[name].shape
        assert int(mask.sum()) == round(0.3 * mask.numel())
    again = uniform_sparse_masks(model, 0.3, seed=1)
    assert all(torch.equal(masks[n], again[n]) for n in masks)
    other = uniform_sparse_masks(model, 0.3, seed=2)
    assert not all(torch.equal(masks[n], other[n]) for n in masks)
    with_fc = uniform_sparse_masks(model, 0.3, seed=1, include_linear=True)
    assert set(with_fc) - convs == {n for n in params if n.endswith("weight") and params[n].dim() == 2}
    with pytest.raises(ConfigError, match="density"):
        uniform_sparse_masks(model, 0.0, seed=1)


def test_position_probabilities_are_proportional_capped_and_mean_the_density() -> None:
    probs = position_keep_probs([[1, 2, 1], [2, 4, 2], [1, 2, 1]], 0.25)
    assert sum(probs) == pytest.approx(9 * 0.25)
    assert probs[4] == pytest.approx(2 * probs[1]) and probs[1] == pytest.approx(2 * probs[0])
    capped = position_keep_probs([[1, 1, 1], [1, 8, 1], [1, 1, 1]], 0.5)
    assert capped[4] == 1.0 and sum(capped) == pytest.approx(4.5)
    assert capped[0] == pytest.approx(3.5 / 8)
    zeros = position_keep_probs([[0, 0, 0], [0, 1, 0], [0, 0, 0]], 0.5)  # centre full, rest spread evenly
    assert zeros[4] == 1.0 and zeros[0] == pytest.approx(3.5 / 8)


@pytest.mark.parametrize("base", [VGG16, RESNET20], ids=["vgg16", "resnet20"])
def test_guided_sparse_masks_reproduce_stage_densities_and_position_maps(base: ModelSpec) -> None:
    model = base.build()
    n_stages = 1 + max(conv_stages(model).values())
    densities = [0.6 - 0.1 * s for s in range(n_stages)]
    maps = [[[0.2, 0.5, 0.2], [0.5, 1.0, 0.5], [0.2, 0.5, 0.2 + 0.1 * s]] for s in range(n_stages)]
    masks = guided_sparse_masks(model, densities, maps, seed=3)
    result = analyse(model, masks)
    for row in result["layers"]:
        if row["kind"] == "conv":
            assert row["kept"] == round(densities[row["stage"]] * row["total"]), row["layer"]
    got, got_maps = stage_sparsity(result)
    assert got == pytest.approx(densities, abs=1e-3)
    for s in range(n_stages):
        want = torch.tensor(position_keep_probs(maps[s], densities[s])).reshape(3, 3)
        assert torch.allclose(torch.tensor(got_maps[s]), want, atol=0.05), s
    again = guided_sparse_masks(model, densities, maps, seed=3)
    assert all(torch.equal(masks[n], again[n]) for n in masks)


def test_guided_sparsification_from_a_magnitude_pruned_vgg_transferred_to_vgg19() -> None:
    torch.manual_seed(0)
    source = VGG16.build()
    with torch.no_grad():  # a pattern to recover: centre weights large, corners small
        for m in source.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.mul_(torch.tensor([[0.2, 1, 0.2], [1, 3, 1], [0.2, 1, 0.2]]))
    method = get_method("magnitude")
    result = method.prune(source, None, method.parse_options({"percent": 0.7}))
    densities, maps = stage_sparsity(result.info)
    target = VGG19.build()
    masks = guided_sparse_masks(
        target, transfer_fractions(densities, 5), transfer_fractions(maps, 5), seed=0
    )
    got, got_maps = stage_sparsity(analyse(target, masks))
    assert got == pytest.approx(densities, abs=1e-3)
    for s in range(5):
        assert torch.allclose(torch.tensor(got_maps[s]), torch.tensor(maps[s]), atol=0.05), s
    assert got_maps[2][1][1] > got_maps[2][0][0]  # the centre-heavy pattern carried over


class _OneByOne(nn.Module):
    """A stand-in with a 1x1 conv: two stages, the second without 3x3 convs."""

    def __init__(self) -> None:
        super().__init__()
        self.spec = SimpleNamespace(in_channels=3, input_size=8)
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.down = nn.Conv2d(16, 40, 1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.conv(x))


def test_guided_sparse_masks_use_the_density_alone_for_1x1_convs() -> None:
    model = _OneByOne()
    masks = guided_sparse_masks(model, [0.5, 0.25], [[[1.0] * 3] * 3, None], seed=0)
    assert int(masks["down.weight"].sum()) == round(0.25 * 640)
    with pytest.raises(ConfigError, match="no kernel map"):
        guided_sparse_masks(model, [0.5, 0.25], [None, None], seed=0)
    with pytest.raises(ConfigError, match="2 stages but 3 densities"):
        guided_sparse_masks(model, [0.5, 0.25, 0.1], [None, None], seed=0)
