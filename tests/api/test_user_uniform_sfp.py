"""The uniform-width arm and SFP for user models: one factor on every DepGraph group, sized to the
pruned model's parameters and trained from fresh weights; SFP's soft training and hard prune."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import prunebench as pb
from prunebench.errors import PrunebenchError
from prunebench.api import Comparison
from prunebench.experiment import load_preset, run_experiment
from prunebench.measure import count_params
from prunebench.models import BuilderSpec, build_model
from prunebench.prune.uniform import uniform_spec
from prunebench.report import write_report
from prunebench.train.checkpoint import load_model
from test_preset_builder import write
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


@pytest.mark.parametrize(("build", "width"), [(functional_cnn, 8), (resnet18_like, 4)])
def test_sfp_on_a_user_model_deploys_the_kept_widths(build, width: int, tmp_path: Path) -> None:
    result = pb.compare(build, method="sfp", kwargs={"width": width}, out=tmp_path, **{**SMALL, "amount": 0.3})
    rows = {r["arm"]: r for r in result.results()}
    assert {"unpruned", "pruned_no_ft", "scratch_e", "scratch_b"} <= set(rows)
    (large_dir,) = (tmp_path / "stages").glob("train_large-*")
    (prune_dir,) = (tmp_path / "stages").glob("prune-*")
    large, _, _ = load_model(large_dir / "final")
    pruned, masks, meta = load_model(prune_dir / "pruned")
    assert masks is None and isinstance(pruned.spec, BuilderSpec) and pruned.spec.pruning
    wide = dict(large.named_modules())
    for name, conv in pruned.named_modules():  # every coupled group lost int(C * 0.3) channels
        if isinstance(conv, torch.nn.Conv2d):
            c = wide[name].out_channels
            assert conv.out_channels == c - int(c * 0.3), name
            # the soft training left exactly the removed filters zeroed in the large model
            zero = (wide[name].weight.flatten(1).abs().sum(1) == 0).sum().item()
            assert zero == int(c * 0.3), name
    # the deployed model keeps the large model's surviving filters (the nonzero ones), in order
    kept = wide["conv1"].weight.flatten(1).abs().sum(1) != 0
    assert torch.equal(pruned.conv1.weight, wide["conv1"].weight[kept])
    assert rows["pruned_no_ft"]["params_total"] == count_params(pruned).total < rows["unpruned"]["params_total"]
    x = torch.randn(2, 1, 8, 8)
    assert pruned.eval()(x).shape == (2, 10)


def test_sfp_and_the_uniform_arm_through_a_builder_preset(tmp_path: Path) -> None:
    path = write(tmp_path, "sfp", "uniform_scratch = true")
    # width 8: at width 4, one channel of the 4-wide stem is a 12% step of the parameter count
    path.write_text(path.read_text().replace("width = 4", "width = 8"))
    preset = load_preset(path)
    run_experiment(preset, tmp_path / "exp", progress=False, say=lambda _: None)
    rows = [r for r in Comparison(tmp_path / "exp", write_report(tmp_path / "exp")).results() if r["seed"] == 0]
    by_arm = {r["arm"]: r for r in rows}
    assert {"unpruned", "pruned_no_ft", "scratch_e", "scratch_b", "uniform_scratch"} <= set(by_arm)
    pruned, uniform = by_arm["pruned_no_ft"]["params_total"], by_arm["uniform_scratch"]["params_total"]
    assert abs(uniform - pruned) / pruned < 0.05 and by_arm["scratch_e"]["params_total"] == pruned


def test_user_model_refusals(tmp_path: Path) -> None:
    with pytest.raises(PrunebenchError, match="rounding='floor'"):
        uniform_spec(_spec(functional_cnn, 8), target_params=900, rounding="nearest")
    with pytest.raises(PrunebenchError, match="below the smallest model"):
        uniform_spec(_spec(functional_cnn, 8), target_params=10)
    with pytest.raises(PrunebenchError, match="layers = 'all' only"):
        pb.compare(functional_cnn, method="sfp", kwargs={"width": 8}, options={"layers": ["conv1"]}, out=tmp_path, **SMALL)
