"""L1-norm filter pruning: exact top-L1 selection, exact named widths, end to end on Fashion-MNIST."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from prunebench.errors import ConfigError
from prunebench.models import CifarResNetSpec, VGGSpec, variant
from prunebench.prune import get_method
from prunebench.prune.importance import keep_count
from prunebench.train import Recipe, evaluate, seed_everything, train

METHOD = get_method("l1norm")
SMALL_VGG = VGGSpec(cfg=(8, "M", 16, 16, "M", 32), in_channels=1, input_size=8)


@pytest.fixture(scope="module")
def trained(small_vgg: Callable[..., tuple]) -> tuple[torch.nn.Module, object, Path]:
    return small_vgg("l1-large", train_subset=2000, val_size=500, recipe=Recipe(epochs=2, lr=0.05, precision="fp32"))


def test_kept_filters_are_the_top_l1_ones_of_the_saved_weights(trained: tuple) -> None:
    model, _, out = trained
    result = METHOD.prune(model, None, METHOD.parse_options({"ratio": 0.5}))
    saved = safetensors.torch.load_file(str(out / "final" / "weights.safetensors"))
    convs = [k for k, v in saved.items() if k.startswith("features.") and v.dim() == 4]
    convs.sort(key=lambda k: int(k.split(".")[1]))  # safetensors lists keys alphabetically
    assert len(convs) == 8 and set(result.kept) == {k.removesuffix(".weight") for k in convs}
    previous = None
    for key in convs:
        w = saved[key].numpy()
        scores = np.abs(w).reshape(w.shape[0], -1).sum(1)
        expected = sorted(np.argsort(-scores, kind="stable")[: w.shape[0] // 2].tolist())
        assert result.kept[key.removesuffix(".weight")] == expected
        # the pruned conv holds exactly the kept filters, on the previous layer's kept inputs
        sliced = saved[key][expected]
        if previous is not None:
            sliced = sliced[:, previous]
        assert torch.equal(result.model.state_dict()[key], sliced)
        previous = expected
    assert result.model.spec.cfg == (8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64)


def test_prune_then_finetune_beats_chance(trained: tuple, tmp_path: Path) -> None:
    model, splits, _ = trained
    opts = METHOD.parse_options({"ratio": 0.5})
    pruned = METHOD.prune(model, splits, opts).model
    recipe = METHOD.finetune(opts, Recipe(epochs=1, lr=0.01, precision="fp32"))
    train(pruned, splits, recipe, tmp_path, seed=1, eval_test=False)
    assert evaluate(pruned, splits.val_x, splits.val_y, info=splits.info) > 0.5


def test_mask_form_computes_what_the_smaller_model_computes(trained: tuple) -> None:
    model, splits, _ = trained
    physical = METHOD.prune(model, None, METHOD.parse_options({"ratio": 0.6})).model.eval()
    masked = METHOD.prune(model, None, METHOD.parse_options({"ratio": 0.6, "mask_form": True}))
    assert masked.model.spec == model.spec and masked.masks
    x = splits.val_x[:64].float().div(255).sub(splits.info.mean[0]).div(splits.info.std[0])
    with torch.no_grad():
        assert torch.allclose(masked.model.eval()(x), physical(x), atol=1e-5)
    assert torch.count_nonzero(model.features[0].weight) == model.features[0].weight.numel()  # input untouched


def _stage_of(conv_id: int, per_stage: int) -> int:
    """docs/methods.md §2.4: stage of a conv id (1 = stem, even = block conv1)."""
    return 0 if conv_id <= 2 * per_stage else 1 if conv_id <= 4 * per_stage else 2


# docs/methods.md §2.4, transcribed: skip list and per-stage prune ratios.
RESNET_TARGETS = {
    "resnet56-a": (9, (16, 20, 38, 54), ("0.1", "0.1", "0.1")),
    "resnet56-b": (9, (16, 18, 20, 34, 38, 54), ("0.6", "0.3", "0.1")),
    "resnet110-a": (18, (36,), ("0.5", "0.0", "0.0")),
    "resnet110-b": (18, (36, 38, 74), ("0.5", "0.4", "0.3")),
}


@pytest.mark.parametrize("name", sorted(RESNET_TARGETS))
def test_named_resnet_variants_have_the_widths_of_methods_md(name: str) -> None:
    n, skip, ratios = RESNET_TARGETS[name]
    expected = []
    for j in range(3 * n):
        conv_id, stage = 2 + 2 * j, j // n
        assert _stage_of(conv_id, n) == stage
        width = (16, 32, 64)[stage]
        expected.append(width if conv_id in skip else int(width * (1 - Fraction(ratios[stage]))))
    seed_everything(0)
    result = METHOD.prune(CifarResNetSpec.uniform(n).build(), None, METHOD.parse_options({"variant": name}))
    assert list(result.model.spec.block_widths) == expected
    assert result.info["kept_counts"] == dict(zip([f"layer{j // n + 1}.{j % n}.conv1" for j in range(3 * n)], expected))


@pytest.mark.parametrize("name, ratios", [("resnet34-a", ("0.3", "0.3", "0.3", "0")), ("resnet34-b", ("0.5", "0.6", "0.4", "0"))])
def test_named_resnet34_variants_have_the_widths_of_methods_md(name: str, ratios: tuple[str, ...]) -> None:
    skip, blocks, widths = (2, 8, 14, 16, 26, 28, 30, 32), (3, 4, 6, 3), (64, 128, 256, 512)
    stages = [s for s, n in enumerate(blocks) for _ in range(n)]
    expected = [
        widths[s] if 2 + 2 * j in skip else int(widths[s] * (1 - Fraction(ratios[s]))) for j, s in enumerate(stages)
    ]
    seed_everything(0)
    result = METHOD.prune(variant("resnet34", input_size=64).build(), None, METHOD.parse_options({"variant": name}))
    assert list(result.info["kept_counts"].values()) == expected
    assert result.model.spec.widths() == variant(name, input_size=64).widths()


def test_vgg16_a_has_the_cfg_of_methods_md() -> None:
    seed_everything(0)
    result = METHOD.prune(variant("vgg16-l1").build(), None, METHOD.parse_options({"variant": "vgg16-a"}))
    assert list(result.model.spec.cfg) == [32, 64, "M", 128, 128, "M", 256, 256, 256, "M", 256, 256, 256, "M", 256, 256, 256]
    assert result.model.spec.hidden == (512,)


def test_variant_of_another_architecture_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a pruning"):
        METHOD.prune(variant("vgg16").build(), None, METHOD.parse_options({"variant": "vgg16-a"}))


def test_ratio_applies_skip_lists_to_block_conv1_only() -> None:
    seed_everything(0)
    model = CifarResNetSpec.uniform(3).build()
    opts = METHOD.parse_options({"ratio": 0.5, "skip_stages": [0], "skip": ["layer2.0.conv1"]})
    kept = METHOD.prune(model, None, opts).info["kept_counts"]
    assert kept == {
        **{f"layer1.{b}.conv1": 16 for b in range(3)},
        "layer2.0.conv1": 32, "layer2.1.conv1": 16, "layer2.2.conv1": 16,
        **{f"layer3.{b}.conv1": 32 for b in range(3)},
    }
    with pytest.raises(ConfigError, match="unknown groups"):
        METHOD.prune(model, None, METHOD.parse_options({"ratio": 0.5, "skip": ["conv1"]}))


def test_greedy_scoring_ignores_kernels_of_removed_inputs() -> None:
    seed_everything(3)
    model = SMALL_VGG.build()
    result = METHOD.prune(model, None, METHOD.parse_options({"ratio": 0.5, "scoring": "greedy"}))
    kept_in = None
    for name in ("features.0", "features.4", "features.7", "features.11"):
        w = model.get_submodule(name).weight.detach()
        if kept_in is not None:
            w = w[:, kept_in]
        scores = w.abs().sum((1, 2, 3)).numpy()
        kept_in = sorted(np.argsort(-scores, kind="stable")[: w.shape[0] // 2].tolist())
        assert result.kept[name] == kept_in


def test_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        METHOD.parse_options({"ratio": 0.5, "variant": "vgg16-a"})
    with pytest.raises(ConfigError, match="unknown variant"):
        METHOD.parse_options({"variant": "vgg16-z"})
    with pytest.raises(ConfigError, match="scoring"):
        METHOD.parse_options({"ratio": 0.5, "scoring": "random"})
    with pytest.raises(ConfigError, match="no conv output"):  # DenseNet: every group is a channel selection
        METHOD.prune(variant("densenet40").build(), None, METHOD.parse_options({"ratio": 0.5}))


def test_keep_count_is_exact_where_floats_round_down() -> None:
    assert int(10 * (1 - 0.9)) == 0  # the float hazard of docs/methods.md §1.2
    assert keep_count(10, 0.9) == 1
    assert keep_count(32, 0.3) == 22
