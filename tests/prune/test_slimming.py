"""Network Slimming: the global |γ| threshold, the min-channel guard, end to end on Fashion-MNIST."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import nn

from prunebench.errors import ConfigError
from prunebench.models import CifarResNetSpec, VGGSpec, variant
from prunebench.prune import get_method
from prunebench.train import BNL1Callback, Recipe, evaluate, seed_everything, train

METHOD = get_method("slimming")


@pytest.fixture(scope="module")
def trained(small_vgg: Callable[..., tuple]) -> tuple[nn.Module, object, Path]:
    """The slimming VGG-11 (γ init 0.5) at width 0.25, sparsity-trained briefly on Fashion-MNIST."""
    opts = METHOD.parse_options({"ratio": 0.5})
    return small_vgg(
        "slim-large", train_subset=2000, val_size=500, recipe=Recipe(epochs=2, lr=0.05, precision="fp32"),
        callbacks=lambda spec: METHOD.large_training(opts, spec),
    )


def test_kept_counts_follow_the_global_threshold_of_the_saved_weights(trained: tuple) -> None:
    model, _, out = trained
    ratio = 0.5
    saved = safetensors.torch.load_file(str(out / "final" / "weights.safetensors"))
    bns = sorted(
        (k for k in saved if k.endswith(".weight") and k.replace(".weight", ".running_mean") in saved),
        key=lambda k: int(k.split(".")[1]),
    )
    gammas = {k: saved[k].abs() for k in bns}
    ordered = torch.sort(torch.cat(list(gammas.values()))).values
    thr = ordered[int(len(ordered) * ratio)]
    expected = [int((g > thr).sum()) for g in gammas.values()]
    result = METHOD.prune(model, None, METHOD.parse_options({"ratio": ratio}))
    assert [m.out_channels for m in result.model.modules() if isinstance(m, nn.Conv2d)] == expected
    assert list(result.info["kept_counts"].values()) == expected
    assert result.info["guarded_layers"] == []
    assert sum(result.info["gamma_histogram"]["counts"]) == len(ordered)
    for k, kept in zip(bns, result.kept.values()):  # exactly the channels above the threshold
        assert kept == (gammas[k] > thr).nonzero().flatten().tolist()


def test_prune_then_finetune_beats_chance(trained: tuple, tmp_path: Path) -> None:
    model, splits, _ = trained
    opts = METHOD.parse_options({"ratio": 0.4})
    pruned = METHOD.prune(model, splits, opts).model
    assert pruned.spec.cfg != model.spec.cfg
    train(pruned, splits, METHOD.finetune(opts, Recipe(epochs=1, lr=0.01, precision="fp32")), tmp_path, seed=1, eval_test=False)
    assert evaluate(pruned, splits.val_x, splits.val_y, info=splits.info) > 0.5


def test_a_layer_the_threshold_would_empty_keeps_min_channels(trained: tuple) -> None:
    model = copy.deepcopy(trained[0])
    with torch.no_grad():
        model.features[5].weight.mul_(1e-6)  # the second conv's BN: every |γ| far below the rest
        model.features[5].weight[7] = 2e-6  # its largest
        model.features[5].weight[3] = 1.5e-6  # its second largest
    result = METHOD.prune(model, None, METHOD.parse_options({"ratio": 0.5, "min_channels": 2}))
    assert result.info["guarded_layers"] == ["features.4"]
    assert result.kept["features.4"] == [3, 7]
    assert result.model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_ties_at_the_threshold_are_all_removed() -> None:
    seed_everything(0)
    model = VGGSpec(cfg=(4, "M", 4), in_channels=1, input_size=8).build()
    with torch.no_grad():
        model.features[1].weight.copy_(torch.tensor([0.1, 0.5, 0.5, 0.9]))
        model.features[5].weight.copy_(torch.tensor([-0.5, 0.2, 0.7, 0.8]))
    # sorted |γ|: .1 .2 .5 .5 .5 .7 .8 .9 -> thr = sorted[int(8 * 0.25)] = .5, kept: |γ| > .5 only
    result = METHOD.prune(model, None, METHOD.parse_options({"ratio": 0.25}))
    assert result.kept == {"features.0": [3], "features.4": [2, 3]}
    assert result.info["threshold"] == pytest.approx(0.5)


def _random_gammas(name: str, width_mult: float) -> nn.Module:
    """`name` at `width_mult`, seed 0, with every BN scale drawn from U(0, 1): channels differ in γ."""
    seed_everything(0)
    model = variant(name, width_mult=width_mult).build()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.0, 1.0)
    return model


@pytest.mark.parametrize("name", ["preresnet164", "densenet40"])
def test_channel_selection_keeps_residual_and_concat_widths(name: str) -> None:
    model = _random_gammas(name, 0.25 if name == "preresnet164" else 1.0)
    result = METHOD.prune(model, None, METHOD.parse_options({"ratio": 0.5}))
    groups = model.spec.groups()
    assert any(g.kind == "select" for g in groups)
    gammas = torch.cat([model.get_submodule(g.bn).weight.detach().abs() for g in groups])
    thr = torch.sort(gammas).values[len(gammas) // 2]
    assert sum(result.info["kept_counts"].values()) == int((gammas > thr).sum()) + len(result.info["guarded_layers"])
    producers = {g.producer for g in groups}
    before = {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and n not in producers}
    after = {n: m.out_channels for n, m in result.model.named_modules() if isinstance(m, nn.Conv2d) and n in before}
    assert after == before  # block outputs, shortcuts and concatenated growth channels keep their width
    assert result.model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_sparsity_lambda_defaults_follow_the_reference() -> None:
    opts = METHOD.parse_options({"ratio": 0.4})
    (vgg,) = METHOD.large_training(opts, variant("vgg19"))
    (resnet,) = METHOD.large_training(opts, CifarResNetSpec.uniform(3))
    (imagenet,) = METHOD.large_training(opts, variant("vgg11-slim-imagenet", input_size=224))
    (custom,) = METHOD.large_training(METHOD.parse_options({"ratio": 0.4, "lam": 3e-4}), variant("vgg19"))
    assert all(isinstance(c, BNL1Callback) for c in (vgg, resnet, imagenet, custom))
    assert (vgg.lam, resnet.lam, imagenet.lam, custom.lam) == (1e-4, 1e-5, 1e-5, 3e-4)
    assert nn.BatchNorm1d in imagenet.kinds and nn.BatchNorm1d not in vgg.kinds


def test_options_are_checked() -> None:
    for bad in ({}, {"ratio": 1.0}, {"ratio": 0.5, "min_channels": 0}, {"ratio": 0.5, "lam": -1.0}):
        with pytest.raises(ConfigError):
            METHOD.parse_options(bad)


@pytest.mark.parametrize("name", ["preresnet164", "densenet40"])
def test_slimming_twice_reads_the_selected_gammas(name: str) -> None:
    """Multi-pass slimming (Liu et al.): the second pass scores a channel selection by the γ of the
    channels it still lets through, not by the full-width BN in front of it."""
    model = _random_gammas(name, 0.25 if name == "preresnet164" else 0.5)
    opts = METHOD.parse_options({"ratio": 0.3})
    first = METHOD.prune(model, None, opts)
    second = METHOD.prune(first.model, None, opts)
    groups = first.model.spec.groups()
    selects = [g for g in groups if g.kind == "select"]
    assert any(g.size < first.model.get_submodule(g.bn).num_features for g in selects)  # a selection narrowed
    scores = []
    for g in groups:
        gamma = first.model.get_submodule(g.bn).weight.detach().abs()
        if g.kind == "select":
            gamma = gamma[first.model.get_submodule(g.name).indices]
        scores.append(gamma)
    everything = torch.cat(scores)
    thr = torch.sort(everything).values[int(len(everything) * 0.3)]
    assert second.info["threshold"] == pytest.approx(float(thr))
    assert sum(second.info["kept_counts"].values()) == int((everything > thr).sum()) + len(second.info["guarded_layers"])
    assert second.model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)
