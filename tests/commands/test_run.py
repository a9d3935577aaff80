"""`prunebench run`: dry run, and SIGKILL midway then rerun gives the uninterrupted numbers."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kit import accuracies, tiny_preset

from prunebench.cli import main

TINY = tiny_preset(
    seeds=(0, 1), train_subset=200, test_subset=200, arms=("unpruned", "finetuned", "scratch_e"),
    large=("epochs = 2", "lr = 0.05", "milestones = [1]"),
)


def _done(exp_dir: Path) -> int:
    try:
        with sqlite3.connect(exp_dir / "prunebench.sqlite", timeout=1) as db:
            return db.execute("SELECT count(*) FROM stages WHERE status = 'done'").fetchone()[0]
    except sqlite3.Error:  # not created yet
        return 0


def test_dry_run_prints_the_graph(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "e1-l1-cifar10-resnet56", "--dry-run", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert "18 stages: train_large 2, prune 4, finetune 4, scratch_e 4, scratch_b 4" in out
    assert "large=train_large-" in out


def test_dry_run_shows_the_transfer_source_and_the_new_arms(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "e10-transferred-cifar100-vgg19", "--dry-run", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "transferred patterns: slimming-60% of preset e14-weights-cifar10-vgg16" in out
    assert "source_pruned=prune-" in out and "transferred_guided_scratch 3" in out
    assert main(["run", "fmnist-sfp", "--dry-run", "--seeds", "1"]) == 0
    assert "<- pretrained=train_large-" in capsys.readouterr().out


def test_unknown_preset_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "nope.toml"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.slow
def test_sigkill_midway_then_rerun_matches_uninterrupted(tmp_path: Path) -> None:
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY)
    command = [sys.executable, "-m", "prunebench.cli", "run", str(preset), "--out"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    # the reference run goes through the process pool: same numbers as in-process at one thread each
    subprocess.run([*command, str(clean), "--workers", "2"], check=True, env=env, capture_output=True, timeout=300)
    proc = subprocess.Popen([*command, str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while _done(killed) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= _done(killed) < 8
    rerun = subprocess.run([*command, str(killed)], check=True, env=env, capture_output=True, text=True, timeout=300)
    assert "already done" in rerun.stdout
    assert accuracies(killed) == accuracies(clean)
    assert len(accuracies(clean)) == 6  # 2 seeds x (unpruned, fine-tuned, Scratch-E)


@pytest.mark.parametrize(("preset", "why"), [
    ("e8-detection-voc-resnet34", "imagenet not found"),  # runnable: its backbones train on ImageNet first
    ("e1-l1-imagenet-resnet34", "imagenet not found"),  # runnable: an ImageNet-layout folder is looked for
])  # fmt: skip
def test_plan_only_presets_refuse_to_run(preset: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", preset, "--out", str(tmp_path)]) == 2
    assert why in capsys.readouterr().err
