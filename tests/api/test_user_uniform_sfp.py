"""The uniform-width arm and SFP for user models: one factor on every DepGraph group, sized to the
pruned model's parameters and trained from fresh weights; SFP's soft training and hard prune."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import prunebench as pb
from prunebench.measure import count_params
from prunebench.models import BuilderSpec, build_model
from prunebench.prune.uniform import uniform_spec
from prunebench.train.checkpoint import load_model
from user_models import functional_cnn, resnet18_like

SMALL = dict(data="digits", seeds=1, epochs=1, train_subset=128, test_subset=64, batch_size=64, amount=0.5)


def _spec(build, width: int) -> BuilderSpec:
    return BuilderSpec(builder=f"{build.__module__}:{build.__name__}", kwargs={"width": width}, num_classes=10, in_channels=1, input_size=8)


@pytest.mark.parametrize(("build", "width"), [(functional_cnn, 8), (resnet18_like, 4)])
def test_uniform_narrows_every_group_by_one_factor(build, width: int) -> None:
    spec = _spec(build, width)
    full = build_model(spec)
    target = count_params(full).total // 2
    narrow, factor = uniform_spec(spec, target_params=target)
    assert isinstance(narrow, BuilderSpec) and narrow.pruning and 0 < factor < 1
    model = build_model(narrow)  # the record replays on a fresh build
    assert abs(count_params(model).total - target) / target < 0.05
    wide = dict(full.named_modules())
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    for name, conv in convs:  # every conv's output width is int(C * factor), the same factor everywhere
        assert conv.out_channels == max(1, int(wide[name].out_channels * factor)), name
    assert model.fc.out_features == 10  # the classifier's outputs are never pruned


def test_uniform_arm_of_a_user_model_trains_fresh_weights(tmp_path: Path) -> None:
    arms = ("unpruned", "finetuned", "uniform_scratch")
    result = pb.compare(resnet18_like, method="l1norm", kwargs={"width": 4}, arms=arms, out=tmp_path, **SMALL)
    by_arm = {r["arm"]: r for r in result.results()}
    assert set(by_arm) == set(arms)
    pruned, uniform = by_arm["finetuned"]["params_total"], by_arm["uniform_scratch"]["params_total"]
    assert abs(uniform - pruned) / pruned < 0.05 and uniform < by_arm["unpruned"]["params_total"]
    assert "Uniform width, scratch" in result.report.read_text()
    stages = tmp_path / "stages"
    (uniform_dir,) = stages.glob("uniform_scratch-*")
    (large_dir,) = stages.glob("train_large-*")
    model, _, _ = load_model(uniform_dir / "final")
    init, _, _ = load_model(large_dir / "init")
    spec = model.spec
    assert isinstance(spec, BuilderSpec) and spec.pruning  # a builder spec with its replayable record
    factor = model.conv1.out_channels / init.conv1.out_channels
    for name, conv in model.named_modules():  # every group narrowed, residual sums included
        if isinstance(conv, torch.nn.Conv2d):
            assert conv.out_channels == int(init.get_submodule(name).out_channels * factor) < init.get_submodule(name).out_channels
    k = model.conv1.out_channels  # fresh weights: not the large model's init nor its trained filters
    assert not torch.allclose(model.conv1.weight, init.conv1.weight[:k])
