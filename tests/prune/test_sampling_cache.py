"""ThiNet's and the regression method's sampling resumed from cached activations gives exactly the
samples, selections and weights of passes that start from the images every time, and skips the
early layers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prunebench.data import load
from prunebench.models import ResNetSpec, variant
from prunebench.prune import get_method
from prunebench.prune.activations import SamplingCache, sample_layer, trunk
from prunebench.train import seed_everything


@pytest.fixture(scope="module")
def splits():
    return load("fashion-mnist", val_size=0, train_subset=200)


def _with_bn_statistics(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BN running statistics, so every layer's output depends on its input channels unevenly."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model


def _models(splits) -> dict[str, nn.Module]:
    seed_everything(0)
    bottleneck = ResNetSpec.uniform("bottleneck", (1, 2, 1, 1), planes=(8, 16, 16, 16), stem=16, num_classes=10,
                                    in_channels=1, input_size=28)  # fmt: skip
    return {
        "vgg11": _with_bn_statistics(variant("vgg11", splits.info, width_mult=0.25).build(), 1),
        "resnet20": _with_bn_statistics(variant("resnet20", splits.info, width_mult=0.5).build(), 2),
        "bottleneck": _with_bn_statistics(bottleneck.build(), 3),
    }


def _prune(model: nn.Module, splits, options: dict, *, resume: bool, method_name: str = "thinet"):
    """The pruning result and how often the stem conv (the only one reading 1 channel) ran."""
    method = get_method(method_name)
    method.resume_sampling = resume
    calls = []
    original = nn.Conv2d._conv_forward

    def counting(self: nn.Conv2d, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        if self.in_channels == 1:
            calls.append(1)
        return original(self, x, w, b)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nn.Conv2d, "_conv_forward", counting)
        result = method.prune(model, splits, method.parse_options(options), seed=3)
    return result, len(calls)


@pytest.mark.parametrize("name", ["vgg11", "resnet20", "bottleneck"])
def test_cached_sampling_gives_the_same_pruned_model_bit_for_bit(name: str, splits) -> None:
    model = _models(splits)[name]
    options = {"ratio": 0.5, "images": 50, "locations": 4, "batch_size": 16}  # 4 batches, the last one partial
    cached, cached_calls = _prune(model, splits, options, resume=True)
    plain, plain_calls = _prune(model, splits, options, resume=False)
    assert cached.kept == plain.kept
    assert [r["relative_error"] for r in cached.info["layers"].values()] == [
        r["relative_error"] for r in plain.info["layers"].values()
    ]
    a, b = cached.model.state_dict(), plain.model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    layers = len(plain.info["layers"])
    assert layers >= 4
    assert plain_calls == layers * 4
    # the stem runs for the first layer's pass, again for the second if the first pruned the stem
    # itself (VGG), and never after: every later pass starts further in the network
    stem_pruned = next(iter(plain.info["layers"])) == trunk(model)[0]
    assert cached_calls == (2 if stem_pruned else 1) * 4


@pytest.mark.parametrize(("name", "extra"), [("vgg11", {}), ("bottleneck", {"input_selection": True})])
def test_regression_with_cached_sampling_is_unchanged(name: str, extra: dict, splits) -> None:
    """Both nets' passes resume (the current one and the original); residual points and select groups included."""
    model = _models(splits)[name]
    options = {"ratio": 0.5, "images": 40, "locations": 3, "batch_size": 16, "path_steps": 6, **extra}
    cached, cached_calls = _prune(model, splits, options, resume=True, method_name="regression")
    plain, plain_calls = _prune(model, splits, options, resume=False, method_name="regression")
    assert cached.kept == plain.kept
    assert cached.info["layers"] == plain.info["layers"]
    for key, value in cached.model.state_dict().items():
        assert torch.equal(value, plain.model.state_dict()[key]), key
    assert cached_calls < plain_calls / 2


def test_prune_last_reaches_the_classifier_from_the_cache(splits) -> None:
    model = _models(splits)["vgg11"]
    options = {"ratio": 0.5, "images": 30, "locations": 3, "batch_size": 16, "prune_last": True}
    cached, _ = _prune(model, splits, options, resume=True)
    plain, _ = _prune(model, splits, options, resume=False)
    assert cached.kept == plain.kept and len(cached.kept) == 8  # every conv, the last one included
    for key, value in cached.model.state_dict().items():
        assert torch.equal(value, plain.model.state_dict()[key]), key


class _Skip(nn.Module):
    """Not a chain: the second layer also reads the model input."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.b(self.a(x)) + x)


def test_only_zoo_models_are_resumed() -> None:
    """A module tree whose links all hold can still read its input again further on: not a zoo model, not resumed."""
    torch.manual_seed(0)
    model = _Skip().eval()
    images = torch.randn(10, 1, 8, 8)
    cache = SamplingCache()
    first = sample_layer(model, "c", images, locations=3, seed=0, batch_size=4, cache=cache, cache_at="b")
    again = sample_layer(model, "c", images, locations=3, seed=0, batch_size=4, cache=cache, cache_at="c")
    plain = sample_layer(model, "c", images, locations=3, seed=0, batch_size=4)
    assert cache.inputs is None and cache.passes_resumed == 0
    assert torch.equal(first.x, plain.x) and torch.equal(again.x, plain.x)


def test_a_broken_link_is_never_resumed(splits, monkeypatch: pytest.MonkeyPatch) -> None:
    """A zoo model whose forward does something before its first module: the chain check refuses it."""
    model = _models(splits)["vgg11"].eval()
    monkeypatch.setattr(model, "forward", lambda x: model.classifier(torch.flatten(model.features(x * 1.0), 1)))
    images = torch.randn(20, 1, 28, 28)
    cache = SamplingCache()
    sample_layer(model, "features.8", images, locations=2, seed=0, batch_size=8, cache=cache, cache_at="features.4")
    assert cache.inputs is None
    again = sample_layer(model, "features.8", images, locations=2, seed=0, batch_size=8, cache=cache,
                         cache_at="features.4")  # fmt: skip
    assert cache.passes_resumed == 0
    assert torch.equal(again.x, sample_layer(model, "features.8", images, locations=2, seed=0, batch_size=8).x)


def test_an_oversized_capture_is_dropped(splits) -> None:
    model = _models(splits)["vgg11"].eval()
    images = torch.randn(20, 1, 28, 28)
    cache = SamplingCache(max_bytes=1000)
    sample_layer(model, "features.8", images, locations=2, seed=0, batch_size=8, cache=cache, cache_at="features.4")
    assert cache.inputs is None
    roomy = SamplingCache()
    sample_layer(model, "features.8", images, locations=2, seed=0, batch_size=8, cache=roomy, cache_at="features.4")
    assert roomy.inputs is not None and len(roomy.inputs) == 3 and roomy.start == trunk(model).index("features.4")
