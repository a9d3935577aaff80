"""`prunebench prune`: checkpoint in, smaller checkpoint + prune_info.json out, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prunebench.cli import main
from prunebench.models import CifarResNetSpec, VGGSpec
from prunebench.train import load_model, save_model, seed_everything

SPEC = VGGSpec(cfg=(16, "M", 32, 32, "M", 64), in_channels=1, input_size=8)


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    seed_everything(0)
    return save_model(tmp_path / "large", SPEC.build())


def test_prune_writes_a_loadable_smaller_checkpoint(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pruned"
    rc = main(["prune", "--method", "l1norm", "--ratio", "0.5", "--checkpoint", str(checkpoint), "--out", str(out),
               "--dataset", "digits", "--train-subset", "300", "--val-size", "100", "--recal-batches", "2"])
    assert rc == 0
    text = capsys.readouterr().out
    for label in ("params", "FLOPs", "latency ms", "accuracy (val)", "BN recalibration", "features.0 16->8"):
        assert label in text
    model, masks, _ = load_model(out)
    assert model.spec.cfg == (8, "M", 16, 16, "M", 32) and masks is None
    info = json.loads((out / "prune_info.json").read_text())
    assert info["method"] == "l1norm" and info["options"]["ratio"] == 0.5
    assert info["after"]["params"] < info["before"]["params"] and info["after"]["flops"] < info["before"]["flops"]
    assert set(info["accuracy"]) == {"split", "before", "pruned", "pruned_recalibrated"}
    assert info["kept"]["features.0"] == sorted(info["kept"]["features.0"]) and len(info["kept"]["features.0"]) == 8


def test_existing_output_needs_force(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pruned"
    args = ["prune", "--method", "l1norm", "--ratio", "0.5", "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main(args) == 0
    before = (out / "weights.safetensors").read_bytes()
    capsys.readouterr()
    assert main([*args[:4], "0.25", *args[5:]]) == 2
    err = capsys.readouterr().err
    assert "already holds a checkpoint" in err and len(err.strip().splitlines()) == 1
    assert (out / "weights.safetensors").read_bytes() == before
    assert main([*args[:4], "0.25", *args[5:], "--force"]) == 0
    assert load_model(out)[0].spec.cfg == (12, "M", 24, 24, "M", 48)


def test_options_json_output_and_masks(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sfp-vgg"
    rc = main(["prune", "--method", "sfp", "--option", "keep_rate=0.5", "--option", 'layers=["features.0", "features.11"]',
               "--checkpoint", str(checkpoint), "--out", str(out), "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["info"]["kept_counts"] == {"features.0": 8, "features.11": 32}
    assert summary["after"]["widths"] == [8, "M", 32, 32, "M", 32]
    # on a ResNet, zeroed stem / conv2 filters stay in the residual sum: saved as masks, counted sparsely
    seed_everything(0)
    resnet = save_model(tmp_path / "resnet", CifarResNetSpec.uniform(1, planes=(8, 8, 16), in_channels=1, input_size=8).build())
    assert main(["prune", "--method", "sfp", "--checkpoint", str(resnet), "--out", str(tmp_path / "sfp-resnet"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    _, masks, _ = load_model(tmp_path / "sfp-resnet")
    assert masks is not None and set(masks) == {"conv1.weight", "layer1.0.conv2.weight", "layer2.0.conv2.weight", "layer3.0.conv2.weight"}
    assert summary["after"]["flops_sparse"] < summary["after"]["flops"]


def test_bad_requests_fail_with_one_line_and_write_nothing(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "never"
    base = ["prune", "--checkpoint", str(checkpoint), "--out", str(out)]
    for extra, message in (
        (["--method", "nope"], "unknown pruning method"),
        (["--method", "sfp", "--option", "bogus=1"], "unknown option(s) bogus"),
        (["--method", "l1norm", "--ratio", "1.5"], "ratio must be in [0, 1)"),
        (["--method", "uniform", "--ratio", "0.5"], "unknown option(s) ratio"),
        (["--method", "l1norm", "--option", "ratio"], "KEY=VALUE"),
    ):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    assert main(["prune", "--method", "l1norm", "--ratio", "0.5", "--checkpoint", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "missing" in capsys.readouterr().err
    assert not out.exists()


def test_list_shows_methods_and_variants(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prune", "--list"]) == 0
    text = capsys.readouterr().out
    for name in ("l1norm", "slimming", "sfp", "uniform", "vgg16-a", "resnet110-b"):
        assert name in text


def test_a_training_folder_is_read_from_its_final_checkpoint(tmp_path: Path) -> None:
    seed_everything(0)
    model = SPEC.build()
    with torch.no_grad():
        model.features[0].weight[3].mul_(100)  # the one filter that must survive
    save_model(tmp_path / "run" / "final", model)
    out = tmp_path / "pruned"
    assert main(["prune", "--method", "l1norm", "--ratio", "0.9375", "--checkpoint", str(tmp_path / "run"), "--out", str(out)]) == 0
    assert json.loads((out / "prune_info.json").read_text())["kept"]["features.0"] == [3]
