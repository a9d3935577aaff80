"""Regression-based channel pruning: LASSO in Gram form vs scikit-learn, reconstruction, targets."""

from __future__ import annotations

import dataclasses
import json
import tempfile
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from sklearn.linear_model import Lasso

from prunebench.data import load
from prunebench.errors import ConfigError
from prunebench.models import ResNetSpec, variant
from prunebench.prune import get_method
from prunebench.prune.activations import as_channels, balanced_images, consumer_weight, plan_layers, sample_layer
from prunebench.prune.regression import (
    TARGETS,
    _residual_points,
    _with_input_selection,
    lasso_select,
    lasso_terms,
    least_squares,
    relative_error,
    response,
)
from prunebench.train import Recipe, evaluate, seed_everything, train

METHOD = get_method("regression")


@pytest.fixture(scope="module")
def splits():
    return load("fashion-mnist", val_size=0, train_subset=1500)


def _trained(spec, splits):
    seed_everything(0)
    model = spec.build()
    with tempfile.TemporaryDirectory() as d:
        train(model, splits, Recipe(epochs=2, lr=0.05, batch_size=32), d, seed=0, progress=False, eval_test=False)
    return model


def _finetuned_accuracy(model, splits) -> float:
    with tempfile.TemporaryDirectory() as d:
        train(model, splits, Recipe(epochs=1, lr=0.01, batch_size=32), d, seed=0, progress=False, eval_test=False)
    return evaluate(model, splits.test_x[:1000], splits.test_y[:1000], info=splits.info)


@pytest.fixture(scope="module")
def trained_vgg(splits):
    return _trained(variant("vgg11", splits.info, width_mult=0.25), splits)


def _planted(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(60, 8, 9, generator=g)
    w = torch.randn(5, 8, 9, generator=g)
    beta = torch.tensor([1.5, 0, 0.8, 0, 0, 2.0, 0, 0])
    y = response(x * beta[None, :, None], w) + 0.01 * torch.randn(60, 5, generator=g, dtype=torch.float64)
    return x, w, y


def test_gram_form_equals_the_explicit_design() -> None:
    x, w, y = _planted()
    terms = lasso_terms(x, w, y)
    z = torch.einsum("sck,nck->snc", x.double(), w.double()).reshape(-1, 8)  # the N·n × C matrix
    torch.testing.assert_close(terms.gram, z.T @ z, rtol=1e-5, atol=1e-3)  # CK × CK products run in float32
    torch.testing.assert_close(terms.b, z.T @ y.reshape(-1))
    assert terms.rows == 300


def test_lasso_agrees_with_scikit_learn_on_the_full_problem() -> None:
    x, w, y = _planted()
    sel = lasso_select(lasso_terms(x, w, y), keep=3)
    assert sel.exact and sel.kept == [0, 2, 5]  # the planted support
    z = torch.einsum("sck,nck->snc", x.double(), w.double()).reshape(-1, 8)
    ref = Lasso(alpha=sel.lam, fit_intercept=False, tol=1e-10, max_iter=100_000).fit(z.numpy(), y.reshape(-1).numpy())
    assert sorted(ref.coef_.nonzero()[0].tolist()) == sel.kept
    one = lasso_select(lasso_terms(x, w, y), keep=1)
    assert len(one.kept) == 1 and set(one.kept) < {0, 2, 5} and one.lam > sel.lam  # fewer channels: larger λ


def test_least_squares_and_lasso_beat_random_channels(trained_vgg, splits) -> None:
    images = balanced_images(splits, 100, seed=0)
    group = next(g for g in trained_vgg.spec.groups() if g.name == "features.8")
    consumer = group.consumers[0]
    sample = sample_layer(trained_vgg, consumer, images, locations=10, seed=0)
    x = as_channels(sample, group.size)
    w = consumer_weight(trained_vgg.get_submodule(consumer), group.size)
    y = response(x, w)
    keep = group.size // 2
    kept = lasso_select(lasso_terms(x, w, y), keep).kept
    assert len(kept) == keep
    ours = relative_error(x, y, kept, least_squares(x, y, kept))
    g = torch.Generator().manual_seed(0)
    random_errors = []
    for _ in range(5):
        rand = sorted(torch.randperm(group.size, generator=g)[:keep].tolist())
        random_errors.append(relative_error(x, y, rand, least_squares(x, y, rand)))
    assert ours < min(random_errors)
    # least squares never does worse than the inherited weights on the same channels
    assert ours <= relative_error(x, y, kept, w[:, kept])


def test_end_to_end_vgg(trained_vgg, splits) -> None:
    result = METHOD.prune(trained_vgg, splits, METHOD.parse_options({"ratio": 0.5, "images": 100, "locations": 5}))
    base = [v for v in trained_vgg.spec.cfg if v != "M"]
    assert [v for v in result.model.spec.cfg if v != "M"] == [c // 2 for c in base[:-1]] + [base[-1]]
    assert all({"sampling", "selection", "reconstruction"} <= set(t) for n, t in result.info["timings"].items()
               if n != "all")  # fmt: skip
    json.dumps(result.info)  # stored next to the checkpoint
    with pytest.raises(ConfigError, match="data set"):
        METHOD.prune(trained_vgg, None, METHOD.parse_options({"ratio": 0.5}))
    assert _finetuned_accuracy(result.model, splits) > 0.5


def test_end_to_end_bottleneck_resnet_with_input_selection(splits) -> None:
    spec = ResNetSpec.uniform("bottleneck", (1, 1, 1, 1), planes=(8, 16, 32, 32), stem=16, num_classes=10,
                              in_channels=1, input_size=28)  # fmt: skip
    model = _trained(spec, splits)
    opts = METHOD.parse_options({"ratio": 0.5, "images": 100, "locations": 5, "input_selection": True})
    result = METHOD.prune(model, splits, opts)
    pruned = result.model.spec
    assert pruned.widths() == [[c // 2, p // 2, p // 2] for c, p in zip((16, 32, 64, 128), (8, 16, 32, 32))]
    layers = result.info["layers"]
    assert layers["layer1.0.select"]["kind"] == "select"
    assert layers["layer2.0.conv2"]["residual_compensation"] and not layers["layer2.0.conv1"]["residual_compensation"]
    assert _finetuned_accuracy(result.model, splits) > 0.4


def test_residual_compensation_reads_the_shortcut_of_the_branch_end() -> None:
    model = ResNetSpec.uniform("bottleneck", (2,), planes=(4,), stem=8, input_size=16).build().eval()
    first = _residual_points(model, "layer1.0.conv3")
    assert first.points == (("shortcut", "layer1.0.downsample", "out"),)
    bn = model.layer1[0].bn3
    torch.testing.assert_close(first.scale, (bn.weight / torch.sqrt(bn.running_var + bn.eps)).double().detach())
    assert _residual_points(model, "layer1.1.conv3").points == (("shortcut", "layer1.1", "in"),)  # identity
    assert _residual_points(model, "layer1.1.conv2") is None  # not the branch's last conv
    images = torch.randn(3, 3, 16, 16)
    points = _residual_points(model, "layer1.1.conv3").points
    s = sample_layer(model, "layer1.1.conv3", images, locations=4, seed=0, points=points)
    assert s.points["shortcut"].shape == (12, 16)


def test_vgg16_5x_is_hit_exactly() -> None:
    s = load("fashion-mnist", val_size=0, train_subset=100)
    padded = SimpleNamespace(
        train_x=F.pad(s.train_x, (2, 2, 2, 2)), train_y=s.train_y, info=dataclasses.replace(s.info, input_size=32)
    )
    seed_everything(0)
    base = variant("vgg16-imagenet", num_classes=10, in_channels=1, input_size=32).build()
    result = METHOD.prune(base, padded, METHOD.parse_options({"variant": "vgg16-5x", "images": 20, "locations": 4}))
    assert result.model.spec == variant("vgg16-5x", num_classes=10, in_channels=1, input_size=32)


def test_resnet50_2x_widths_resolve_exactly() -> None:
    """The full ResNet-50-2x run takes minutes on a shared CPU: here only its resolved plan is checked."""
    base = variant("resnet50", num_classes=10, input_size=32)
    wide = _with_input_selection(base.build()).spec
    plan = plan_layers(wide, ratio=None, target_name="resnet50-2x", eligible=lambda g: True, allowed=TARGETS)
    target = variant("resnet50-2x", num_classes=10, input_size=32)
    full = {g.name: g.size for g in wide.groups()}
    assert plan.keep == {g.name: g.size for g in target.groups() if g.size < full[g.name]}
    assert wide.with_kept({n: list(range(k)) for n, k in plan.keep.items()}).widths() == target.widths()
