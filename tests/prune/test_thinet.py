"""ThiNet: greedy selection, least-squares rescaling, end to end on Fashion-MNIST, named targets."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from prunebench.data import load
from prunebench.models import ResNetSpec, variant
from prunebench.prune import get_method
from prunebench.prune.activations import (
    as_channels,
    balanced_images,
    consumer_weight,
    contributions,
    plan_layers,
    sample_layer,
)
from prunebench.prune.thinet import TARGETS, greedy_remove, relative_error, rescale
from prunebench.train import Recipe, evaluate, seed_everything, train


@pytest.fixture(scope="module")
def splits():
    return load("fashion-mnist", val_size=0, train_subset=1500)


@pytest.fixture(scope="module")
def trained_vgg(splits):
    seed_everything(0)
    model = variant("vgg11", splits.info, width_mult=0.25).build()
    with tempfile.TemporaryDirectory() as d:
        train(model, splits, Recipe(epochs=2, lr=0.05, batch_size=32), d, seed=0, progress=False, eval_test=False)
    return model


def padded_splits() -> SimpleNamespace:
    """Fashion-MNIST padded to 32 px: the ImageNet VGG-16's five pools need it (sampling reads only these)."""
    s = load("fashion-mnist", val_size=0, train_subset=100)
    return SimpleNamespace(
        train_x=F.pad(s.train_x, (2, 2, 2, 2)), train_y=s.train_y, info=dataclasses.replace(s.info, input_size=32)
    )


def _accuracy(model, splits) -> float:
    return evaluate(model, splits.test_x[:1000], splits.test_y[:1000], info=splits.info)


def test_incremental_greedy_equals_the_naive_greedy() -> None:
    g = torch.Generator().manual_seed(0)
    xhat = torch.randn(300, 12, generator=g, dtype=torch.float64) + torch.randn(1, 12, generator=g, dtype=torch.float64)
    removed, s = [], torch.zeros(300, dtype=torch.float64)
    for _ in range(7):
        j = min((c for c in range(12) if c not in removed), key=lambda c: float(((s + xhat[:, c]) ** 2).sum()))
        removed.append(j)
        s = s + xhat[:, j]
    assert greedy_remove(xhat, 7) == removed


def test_rescaling_is_least_squares() -> None:
    g = torch.Generator().manual_seed(1)
    xhat = torch.randn(200, 6, generator=g, dtype=torch.float64)
    kept = [0, 2, 3]
    w = rescale(xhat, kept)
    expected = torch.linalg.lstsq(xhat[:, kept], xhat.sum(1, keepdim=True)).solution[:, 0]
    torch.testing.assert_close(w, expected)
    assert relative_error(xhat, kept, w) <= relative_error(xhat, kept, torch.ones(3, dtype=torch.float64))


def test_greedy_beats_random_channels(trained_vgg, splits) -> None:
    images = balanced_images(splits, 100, seed=0)
    group = next(g for g in trained_vgg.spec.groups() if g.name == "features.8")  # a 64 -> 64 conv pair
    layer = trained_vgg.get_submodule(group.consumers[0])
    sample = sample_layer(trained_vgg, group.consumers[0], images, locations=10, seed=0)
    xhat = contributions(as_channels(sample, group.size), consumer_weight(layer, group.size), seed=0)
    keep = group.size // 2
    removed = set(greedy_remove(xhat, group.size - keep))
    kept = [c for c in range(group.size) if c not in removed]
    ours = relative_error(xhat, kept, rescale(xhat, kept))
    g = torch.Generator().manual_seed(0)
    random_errors = []
    for _ in range(5):
        rand = sorted(torch.randperm(group.size, generator=g)[:keep].tolist())
        random_errors.append(relative_error(xhat, rand, rescale(xhat, rand)))
    assert ours < min(random_errors)


def test_end_to_end_vgg(trained_vgg, splits) -> None:
    method = get_method("thinet")
    result = method.prune(trained_vgg, splits, method.parse_options({"ratio": 0.5, "images": 60, "locations": 5}))
    base = [v for v in trained_vgg.spec.cfg if v != "M"]
    pruned = [v for v in result.model.spec.cfg if v != "M"]
    assert pruned == [c // 2 for c in base[:-1]] + [base[-1]]  # the last conv (consumer: classifier) kept
    assert set(result.info["timings"]["features.0"]) >= {"sampling", "selection", "reconstruction"}
    assert result.info["sampling"] == {"images": 60, "locations": 5, "samples": 300}
    assert all(0 <= row["relative_error"] < 1 for row in result.info["layers"].values())
    json.dumps(result.info)  # stored next to the checkpoint
    model = result.model
    with tempfile.TemporaryDirectory() as d:
        train(model, splits, Recipe(epochs=1, lr=0.01, batch_size=32), d, seed=0, progress=False, eval_test=False)
    assert _accuracy(model, splits) > 0.5


def test_finetune_between_layers_runs_the_trainer(trained_vgg) -> None:
    tiny = load("fashion-mnist", val_size=0, train_subset=200)
    method = get_method("thinet")
    opts = method.parse_options({"ratio": 0.25, "images": 20, "locations": 3, "finetune_between": 1})
    result = method.prune(trained_vgg, tiny, opts, seed=1)
    assert all("finetune" in result.info["timings"][name] for name in result.info["layers"])
    assert _accuracy(result.model, tiny) > 0.3


def test_named_vgg_target_is_hit_exactly_and_its_head_rebuilt() -> None:
    seed_everything(0)
    base = variant("vgg16-imagenet", num_classes=10, in_channels=1, input_size=32).build()
    method = get_method("thinet")
    opts = method.parse_options({"variant": "thinet-tiny", "images": 10, "locations": 2})
    result = method.prune(base, padded_splits(), opts)
    target = variant("thinet-tiny", num_classes=10, in_channels=1, input_size=32)
    assert result.model.spec == target
    assert result.info["reinitialised"] == ["classifier.0.weight", "classifier.0.bias"]
    assert result.model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_end_to_end_bottleneck_resnet(splits) -> None:
    spec = ResNetSpec.uniform("bottleneck", (1, 1, 1, 1), planes=(8, 16, 32, 32), stem=16, num_classes=10,
                              in_channels=1, input_size=28)  # fmt: skip
    seed_everything(0)
    model = spec.build()
    with tempfile.TemporaryDirectory() as d:
        train(model, splits, Recipe(epochs=2, lr=0.05, batch_size=32), d, seed=0, progress=False, eval_test=False)
    method = get_method("thinet")
    result = method.prune(model, splits, method.parse_options({"ratio": 0.5, "images": 60, "locations": 5}))
    assert result.model.spec.inner == ((4, 4), (8, 8), (16, 16), (16, 16))  # conv1 and conv2 of every block
    assert set(result.info["layers"]) == {f"layer{s}.0.conv{c}" for s in range(1, 5) for c in (1, 2)}
    pruned = result.model
    with tempfile.TemporaryDirectory() as d:
        train(pruned, splits, Recipe(epochs=1, lr=0.01, batch_size=32), d, seed=0, progress=False, eval_test=False)
    assert _accuracy(pruned, splits) > 0.4


def test_thinet_50_runs_on_resnet50_and_is_hit_exactly() -> None:
    s = padded_splits()
    rgb = SimpleNamespace(train_x=s.train_x.repeat(1, 3, 1, 1), train_y=s.train_y,
                          info=dataclasses.replace(s.info, in_channels=3, mean=(0.5,) * 3, std=(0.5,) * 3))  # fmt: skip
    seed_everything(0)
    base = variant("resnet50", num_classes=10, input_size=32).build()
    method = get_method("thinet")
    result = method.prune(base, rgb, method.parse_options({"variant": "thinet-50", "images": 10, "locations": 2}))
    assert result.model.spec == variant("thinet-50", num_classes=10, input_size=32)
    # the target's projection convs carry a (zero-initialised) bias, as the reference models do
    assert result.info["reinitialised"] == [f"layer{s}.0.downsample.0.bias" for s in range(1, 5)]
    json.dumps(result.info)


@pytest.mark.parametrize("name", ["thinet-conv", "thinet-gap", "thinet-30", "thinet-70"])
def test_other_named_targets_resolve_exactly(name: str) -> None:
    """Running these at full width takes long on a shared CPU: the resolved per-layer plan is checked instead."""
    base = variant("resnet50" if name[-1].isdigit() else "vgg16-imagenet", num_classes=10, input_size=32)
    plan = plan_layers(base, ratio=None, target_name=name, eligible=lambda g: True, allowed=TARGETS)
    target = variant(name, num_classes=10, input_size=32)
    kept = {g: list(range(k)) for g, k in plan.keep.items()}
    assert base.with_kept(kept).widths()[: len(target.widths())] == target.widths()
    if name[-1].isdigit():  # floor(C · r) per stage, docs/methods.md §3.4
        r = int(name[-2:]) / 100
        assert {k for g, k in plan.keep.items() if g.startswith("layer1.")} == {int(64 * r)}
