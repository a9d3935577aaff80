"""One accuracy per checkpoint: every evaluation is fp32, whatever precision training used."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from prunebench.cli import main
from prunebench.data import load
from prunebench.models import VGGSpec, build_model
from prunebench.train.evaluation import evaluate_loss_acc
from prunebench.train.speed import SpeedSettings


def test_evaluation_ignores_bf16_autocast() -> None:
    """The loss would differ in its low digits under bf16 autocast: here it must not."""
    splits = load("digits", val_size=0)
    torch.manual_seed(0)
    model = build_model(VGGSpec(cfg=(8, "M", 16), num_classes=10, in_channels=1, input_size=8))
    cpu = torch.device("cpu")
    fp32 = evaluate_loss_acc(model, splits.test_x, splits.test_y, info=splits.info,
                             speed=SpeedSettings(device=cpu, bf16=False, channels_last=False, compile=False))
    bf16 = evaluate_loss_acc(model, splits.test_x, splits.test_y, info=splits.info,
                             speed=SpeedSettings(device=cpu, bf16=True, channels_last=False, compile=False))
    assert bf16 == fp32
    with torch.autocast("cpu", dtype=torch.bfloat16):  # what the old code did: a different number
        logits = model(torch.randn(4, 1, 8, 8))
    assert logits.dtype == torch.bfloat16


def test_train_reports_the_accuracy_eval_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = ["train", "--arch", "resnet20", "--width-mult", "0.25", "--dataset", "digits", "--epochs", "1",
            "--train-subset", "200", "--val-size", "100", "--precision", "bf16", "--seed", "3",
            "--out", str(out), "--json"]  # fmt: skip
    assert main(args) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["precision"] == "bf16"
    assert main(["eval", str(out), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == trained["test_acc"]
    assert main(["eval", str(out / "best"), "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == trained["best_val_acc"]
