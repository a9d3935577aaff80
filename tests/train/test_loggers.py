"""Loggers: TensorBoard scalars equal to metrics.csv, plain epoch lines off a terminal."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from prunebench.data import load
from prunebench.models import VGGSpec, build_model
from prunebench.train import Recipe, train
from prunebench.train.loggers import TB_TAGS, wants_epoch_lines


def _tiny(out: Path, **kw: object) -> None:
    splits = load("digits", val_size=100, train_subset=200)
    torch.manual_seed(0)
    model = build_model(VGGSpec(cfg=(8, "M", 16), num_classes=10, in_channels=1, input_size=8))
    recipe = Recipe(epochs=3, lr=0.05, milestones=(2,), precision="fp32")
    train(model, splits, recipe, out, seed=0, **kw)  # type: ignore[arg-type]


def test_tensorboard_scalars_match_metrics_csv(tmp_path: Path) -> None:
    _tiny(tmp_path / "run", progress=False)
    events = EventAccumulator(str(tmp_path / "run"))
    events.Reload()
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert set(events.Tags()["scalars"]) == {TB_TAGS[k] for k in ("train_loss", "val_loss", "train_acc", "val_acc", "lr")}
    for key in ("lr", "train_loss", "val_acc"):
        logged = [(e.step, e.value) for e in events.Scalars(TB_TAGS[key])]
        assert logged == [(int(r["epoch"]), pytest.approx(float(r[key]), rel=1e-6)) for r in rows]
    assert [e.value for e in events.Scalars("optimizer/lr")] == pytest.approx([0.05, 0.05, 0.005])


def test_tensorboard_can_be_switched_off(tmp_path: Path) -> None:
    _tiny(tmp_path / "run", progress=False, tensorboard=False)
    assert not list((tmp_path / "run").glob("events.out.tfevents.*"))


def test_one_line_per_epoch_off_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert wants_epoch_lines(None, io.StringIO()) and not wants_epoch_lines(False, io.StringIO())
    _tiny(tmp_path / "run")  # progress=None; pytest's stderr is not a terminal
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("[run] epoch")]
    assert [x.split()[2] for x in lines] == ["1/3", "2/3", "3/3"]
    assert "lr 0.005" in lines[2] and "val " in lines[0] and lines[0].endswith(" s")
    _tiny(tmp_path / "quiet", progress=False)
    assert "epoch" not in capsys.readouterr().err


def test_the_train_command_prints_epochs_under_nohup(tmp_path: Path) -> None:
    """stdout and stderr to files, as under nohup or a batch scheduler."""
    cmd = [sys.executable, "-m", "prunebench.cli", "train", "--arch", "resnet20", "--width-mult", "0.25",
           "--dataset", "digits", "--epochs", "2", "--train-subset", "100", "--val-size", "0",
           "--precision", "fp32", "--out", str(tmp_path / "job")]  # fmt: skip
    log = tmp_path / "nohup.out"
    with log.open("w") as f:
        subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=True,
                       env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=120)
    text = log.read_text()
    assert "[job] epoch 1/2" in text and "[job] epoch 2/2" in text


def test_tensorboard_logdir_of_an_experiment_lists_every_stage(tmp_path: Path) -> None:
    """`tensorboard --logdir EXP` finds one run per stage folder."""
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    for name in ("finetune-a", "scratch_e-b"):
        _tiny(tmp_path / "stages" / name, progress=False)
    mux = EventMultiplexer().AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    assert sorted(mux.Runs()) == ["stages/finetune-a", "stages/scratch_e-b"]
    assert "optimizer/lr" in mux.Runs()["stages/finetune-a"]["tensors"]
