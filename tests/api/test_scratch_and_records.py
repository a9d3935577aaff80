"""The structural pruning record of a user model: replayable on a fresh init (the scratch arms),
stored in checkpoints as JSON, and refused with one line naming the layer when it cannot apply."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from prunebench.errors import PrunebenchError
from prunebench.models import BuilderSpec, spec_from_json
from prunebench.prune import get_method
from prunebench.prune.depgraph import prune_kept
from prunebench.prune.scratch import scratch_model
from prunebench.train import load_model, save_model


def user_spec(fn: str, **kwargs: int) -> BuilderSpec:
    return BuilderSpec(builder=f"user_models:{fn}", kwargs=kwargs, num_classes=10, in_channels=1, input_size=8)


def shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("fn", ["functional_cnn", "resnet18_like"])
def test_scratch_arm_has_the_pruned_widths_and_fresh_weights(fn: str) -> None:
    torch.manual_seed(0)
    large = user_spec(fn).build()
    method = get_method("l1norm")
    pruned = method.prune(large, None, method.parse_options({"ratio": 0.5})).model
    assert shapes(pruned) != shapes(large)
    scratch, masks = scratch_model(pruned, seed=7, selection_from=pruned)
    assert masks is None and shapes(scratch) == shapes(pruned)
    weights = [k for k, v in pruned.state_dict().items() if v.dtype.is_floating_point and v.dim() > 1]
    assert weights and all(not torch.equal(scratch.state_dict()[k], pruned.state_dict()[k]) for k in weights)
    again, _ = scratch_model(pruned, seed=7)  # the arm's seed decides the fresh init
    assert all(torch.equal(again.state_dict()[k], scratch.state_dict()[k]) for k in weights)
    out = scratch(torch.zeros(2, 1, 8, 8))
    assert out.shape == (2, 10)


def test_residual_widths_stay_coupled() -> None:
    model = user_spec("resnet18_like", width=4).build()
    pruned = prune_kept(model, {"conv1": [0, 2]}).model  # the stem's width is tied to layer1's sums
    assert pruned.get_submodule("conv1").out_channels == 2
    assert pruned.get_submodule("layer1.1.conv2").out_channels == 2
    assert pruned.get_submodule("layer2.0.shortcut.0").in_channels == 2
    assert pruned.eval()(torch.zeros(1, 1, 8, 8)).shape == (1, 10)


def test_checkpoint_holds_builder_kwargs_and_record(tmp_path: Path) -> None:
    model = user_spec("functional_cnn", width=8).build()
    pruned = prune_kept(model, {"conv1": [1, 3, 5], "conv2": list(range(0, 16, 2))}).model
    save_model(tmp_path / "ck", pruned)
    text = (tmp_path / "ck" / "spec.json").read_text()
    spec = spec_from_json(text)
    assert isinstance(spec, BuilderSpec) and spec.builder == "user_models:functional_cnn" and spec.kwargs_dict() == {"width": 8}
    assert ["conv1", "out", [0, 2, 4, 6, 7]] in spec.to_dict()["pruning"]
    loaded, _, _ = load_model(tmp_path / "ck")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in pruned.state_dict().items())


def test_one_line_errors_name_the_layer() -> None:
    model = user_spec("functional_cnn").build()
    with pytest.raises(PrunebenchError, match="empty layer 'conv1'"):
        prune_kept(model, {"conv1": []})
    with pytest.raises(PrunebenchError, match="'bn1' is not a conv"):
        prune_kept(model, {"bn1": [0]})
    bad = user_spec("functional_cnn").with_pruning([("conv1", "out", tuple(range(16)))])
    with pytest.raises(PrunebenchError, match="empty layer 'conv1'"):
        bad.build()
    with pytest.raises(PrunebenchError, match="standard library"):
        BuilderSpec(builder="os:system").build()
    with pytest.raises(PrunebenchError, match="cannot import"):
        BuilderSpec(builder="no_such_pkg_h10:f").build()


def test_grouped_convs_and_concatenations() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(1, 8, 3, padding=1)
            self.g = nn.Conv2d(16, 16, 3, padding=1, groups=4)
            self.fc = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.g(torch.cat([self.a(x), self.b(x)], 1))
            return self.fc(x.mean((2, 3)))

    pruned = prune_kept(Net(), {"a": [0, 1, 2, 3]}, torch.zeros(1, 1, 8, 8)).model
    assert pruned(torch.zeros(1, 1, 8, 8)).shape == (1, 10)
    assert pruned.get_submodule("a").out_channels == 4


def test_magnitude_masks_on_a_user_model_and_their_scratch_arm() -> None:
    large = user_spec("functional_cnn", width=8).build()
    method = get_method("magnitude")
    res = method.prune(large, None, method.parse_options({"ratio": 0.5}))
    assert res.masks and isinstance(res.model.spec, BuilderSpec)
    scratch, masks = scratch_model(res.model, seed=3, masks=res.masks)
    assert masks is not None
    for key, mask in masks.items():
        weight = scratch.get_parameter(key)
        assert not weight[~mask].any() and not torch.equal(weight, res.model.get_parameter(key))
