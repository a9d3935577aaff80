"""`prunebench train` and `prunebench eval` end to end on a tiny ResNet and digits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from prunebench.cli import build_parser, main
from prunebench.commands.train import parse_milestones
from prunebench.errors import ConfigError
from prunebench.measure import count_flops
from prunebench.models import VGGSpec, build_model
from prunebench.train import save_model


def _train(out: Path, *extra: str) -> list[str]:
    return ["train", "--arch", "resnet20", "--width-mult", "0.25", "--dataset", "digits", "--epochs", "2",
            "--train-subset", "200", "--val-size", "100", "--precision", "fp32", "--seed", "1",
            "--out", str(out), *extra]


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out)


def test_train_resume_refuse_and_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(_train(out, "--json")) == 0
    result = _json(capsys)
    assert result["epochs"] == 2 and result["steps"] == 2 * 4 and result["precision"] == "fp32"
    config = json.loads((out / "config.json").read_text())
    assert config["arch"] == "resnet20" and config["recipe"]["milestones"] == [1]  # 0.75 x 2 rounds onto 0.5 x 2: dropped

    # a finished run is not retrained
    stamp = (out / "result.json").stat().st_mtime_ns
    assert main(_train(out, "--json")) == 0
    captured = capsys.readouterr()
    assert "not retrained" in captured.err and json.loads(captured.out)["steps"] == result["steps"]
    assert (out / "result.json").stat().st_mtime_ns == stamp

    # an interrupted run (state/ but no result) resumes and says so
    (out / "result.json").unlink()
    shutil.rmtree(out / "final")
    assert main(_train(out, "--json")) == 0
    captured = capsys.readouterr()
    assert "resuming" in captured.err and "after epoch 2 of 2" in captured.err
    assert json.loads(captured.out)["test_acc"] == result["test_acc"]

    # different settings on the same folder: one-line error, nothing overwritten
    config_before = (out / "config.json").read_bytes()
    assert main(_train(out, "--lr", "0.05")) == 2
    err = capsys.readouterr().err.strip()
    assert "different settings (lr: 0.1 there, 0.05 now)" in err and "\n" not in err
    assert (out / "config.json").read_bytes() == config_before

    # eval: a run folder means its final model; best/ scored on the run's validation split
    assert main(["eval", str(out), "--json"]) == 0
    ev = _json(capsys)
    assert ev["accuracy"] == result["test_acc"] and ev["dataset"] == "digits" and ev["images"] == 300
    assert ev["params"]["total"] > ev["params"]["prunable"] > 0 and ev["flops"]["flops"] > ev["flops"]["macs"] > 0
    assert main(["eval", str(out / "best"), "--split", "val", "--json"]) == 0
    assert _json(capsys)["accuracy"] == result["best_val_acc"]
    assert main(["eval", str(out)]) == 0
    text = capsys.readouterr().out
    assert "accuracy:" in text and "params:" in text and "FLOPs:" in text


def test_eval_of_a_bad_folder_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path / "missing"), "--dataset", "digits"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("prunebench eval: error:") and "missing" in err and "\n" not in err


def test_parse_milestones() -> None:
    assert parse_milestones("0.5,0.75", 160) == (80, 120)
    assert parse_milestones("80,120", 160) == (80, 120)
    assert parse_milestones("none", 40) == () and parse_milestones("", 40) == ()
    with pytest.raises(ConfigError):
        parse_milestones("half", 10)


@pytest.mark.parametrize("cmd, words", [("train", ["--milestones", "resumes"]), ("eval", ["--split", "run folder"])])
def test_help_texts(cmd: str, words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args([cmd, "--help"])
    text = capsys.readouterr().out
    assert all(w in text for w in words)


def test_eval_of_a_masked_checkpoint_counts_sparse_cost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = build_model(VGGSpec(cfg=(8, "M", 16), num_classes=10, in_channels=1, input_size=8))
    dense = count_flops(model)
    w = model.features[0].weight
    mask = torch.ones_like(w, dtype=torch.bool)
    mask[:4] = False
    with torch.no_grad():
        w[:4] = 0
    save_model(tmp_path / "ck", model, masks={"features.0.weight": mask})
    assert main(["eval", str(tmp_path / "ck"), "--dataset", "digits", "--json"]) == 0
    ev = _json(capsys)
    assert ev["masked"] and ev["flops"]["sparse"] and ev["flops"]["flops"] < dense.flops
    assert ev["params"]["total"] - ev["params"]["nonzero"] == 4 * 9
