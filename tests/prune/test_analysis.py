"""Sparsity analysis: stages by feature-map size, per-layer densities, 3x3 keep maps as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prunebench.models import PreResNetSpec, VGGSpec, build_model
from prunebench.prune.analysis import conv_stages, kernel_keep_maps, layer_densities, save_analysis

SPEC = VGGSpec(cfg=(4, "M", 8, 8, "M", 16), in_channels=1, input_size=8)


def test_stages_follow_the_feature_map_size_and_agree_with_the_zoo_groups() -> None:
    model = build_model(SPEC)
    stages = conv_stages(model)
    assert stages == {"features.0": 0, "features.4": 1, "features.7": 1, "features.11": 2}
    assert stages == {g.producer: g.stage for g in SPEC.groups()}


def test_resnet_stem_joins_the_first_stage_and_one_by_one_convs_stay_out_of_kernel_maps() -> None:
    model = build_model(PreResNetSpec.uniform("bottleneck", 1, planes=(4, 8, 8), stem=4, in_channels=1, input_size=8))
    stages = conv_stages(model)
    assert stages["conv1"] == 0 and max(stages.values()) == 2
    convs = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert any(m.kernel_size == (1, 1) for m in convs.values())
    maps = kernel_keep_maps(model, {})
    three = {n: m for n, m in convs.items() if m.kernel_size == (3, 3)}
    kernels = [sum(m.out_channels * m.in_channels for n, m in three.items() if stages[n] == s) for s in range(3)]
    assert [m["kernels"] for m in maps] == kernels
    assert all(m["keep_prob"] == [[1.0] * 3] * 3 for m in maps)


def test_layer_densities_and_kernel_maps_from_a_known_mask(tmp_path: Path) -> None:
    model = build_model(SPEC)
    params = dict(model.named_parameters())
    masks = {}
    for name in ("features.4.weight", "features.7.weight"):
        m = torch.zeros(params[name].shape, dtype=torch.bool)
        m[..., 1, 1] = True  # keep only kernel centres in stage 1
        masks[name] = m
    corner = torch.ones(params["features.11.weight"].shape, dtype=torch.bool)
    corner[: corner.shape[0] // 2, :, 0, 0] = False  # half of stage 2's kernels lose their top-left tap
    masks["features.11.weight"] = corner

    rows = {r["layer"]: r for r in layer_densities(model, masks)}
    assert rows["features.4"]["density"] == pytest.approx(1 / 9) and rows["features.7"]["stage"] == 1
    assert rows["features.0"]["density"] == 1.0 and rows["features.0"]["stage"] == 0
    assert rows["features.11"]["kept"] == corner.numel() - corner.shape[0] // 2 * corner.shape[1]
    assert rows["classifier.0"] == {"layer": "classifier.0", "kind": "linear", "shape": [10, 16], "kept": 160,
                                    "total": 160, "density": 1.0, "stage": None}

    data = save_analysis(tmp_path / "sub" / "analysis.json", masks, model)
    assert json.loads((tmp_path / "sub" / "analysis.json").read_text()) == data
    maps = {m["stage"]: m for m in data["kernel_maps"]}
    centre_only = [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    assert maps[1]["keep_prob"] == centre_only and maps[1]["kernels"] == 8 * 4 + 8 * 8
    assert maps[2]["keep_prob"][0][0] == pytest.approx(0.5) and maps[2]["keep_prob"][2][2] == 1.0
    kept, total = sum(int(m.sum()) for m in masks.values()), sum(m.numel() for m in masks.values())
    assert data["masked_density"] == pytest.approx(kept / total)
