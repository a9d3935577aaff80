"""The issue's acceptance test: 4 epochs in one go == 2 epochs, SIGKILL, resume for 2 (bit-identical)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import torch

from trainkit import ZeroRandomFilter, digits, first_conv_mask, tiny_model

from prunebench.train import Recipe, train
from prunebench.train.checkpoint import read_torch_state

HERE = Path(__file__).parent


def _run(out: Path) -> tuple[torch.nn.Module, object]:
    recipe = Recipe.from_fractions(4, (0.5,), lr=0.1, precision="fp32")
    model = tiny_model(seed=3)
    result = train(model, digits(), recipe, out, seed=3, masks=first_conv_mask(model),
                   callbacks=[ZeroRandomFilter()], progress=False)
    return model, result


def test_kill_and_resume_is_bit_identical(tmp_path: Path) -> None:
    whole_model, whole = _run(tmp_path / "whole")

    killed = tmp_path / "killed"
    # run by path, so the child imports trainkit from this folder
    proc = subprocess.run([sys.executable, str(HERE / "resume_child.py"), str(killed)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (killed / "result.json").exists()
    assert read_torch_state(killed / "state" / "train_state.pt")["next_epoch"] == 2

    resumed_model, resumed = _run(killed)
    a, b = whole_model.state_dict(), resumed_model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert resumed.steps == whole.steps and resumed.images_seen == whole.images_seen
    assert [h["val_acc"] for h in resumed.history] == [h["val_acc"] for h in whole.history]
    assert resumed.test_acc == whole.test_acc
    # metrics.csv holds each epoch once, although epoch 2 was started twice
    rows = (killed / "metrics.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1", "2", "3"]
