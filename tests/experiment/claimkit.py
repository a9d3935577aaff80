"""Shared helpers for the claim, verification and store-failure tests: the tiniest real experiment
(scikit-learn digits, a quarter-width ResNet-20, one epoch) and ways to look into its store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from kit import accuracies as accuracies  # re-exported: the claim tests import it from here
from kit import tiny_preset

TINY = tiny_preset(
    "claims", seeds=(0, 1), data="digits", train_subset=200, data_extra=("val_size = 0",), variant="resnet20", width_mult=0.25,
    arms=("unpruned", "finetuned", "scratch_e"), large=("epochs = EPOCHS", "lr = 0.05", "batch_size = 64", 'precision = "fp32"'),
)

#: 2 seeds x (train_large, prune, finetune, scratch_e)
STAGES = 8
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONFAULTHANDLER": "1"}


def write_preset(folder: Path, epochs: int = 1, seeds: int = 2) -> Path:
    path = folder / "claims.toml"
    text = TINY.replace("EPOCHS", str(epochs)).replace("seeds = [0, 1]", f"seeds = {list(range(seeds))}")
    path.write_text(text)
    return path


def run_command(preset: Path, out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "prunebench.cli", "run", str(preset), "--out", str(out), *args]


def start(preset: Path, out: Path, *args: str, **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        run_command(preset, out, *args), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def query(exp_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """A read of the store that never fails (0 rows while it does not exist yet)."""
    try:
        with sqlite3.connect(exp_dir / "prunebench.sqlite", timeout=5) as db:
            return db.execute(sql).fetchall()
    except sqlite3.Error:
        return []


def attempts(exp_dir: Path) -> dict[str, list[str]]:
    """Stage folder -> the outcome of each time it was claimed to run."""
    rows = query(exp_dir, "SELECT s.dir, a.outcome FROM attempts a JOIN stages s ON s.id = a.stage_id ORDER BY a.id")
    out: dict[str, list[str]] = {}
    for d, outcome in rows:
        out.setdefault(d, []).append(outcome)
    return out


def no_traceback(text: str) -> bool:
    return "Traceback" not in text and "Fatal Python error" not in text
