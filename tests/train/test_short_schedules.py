"""Short runs train at the LR they ask for: fractional milestones that round to epoch 0, or onto
an earlier milestone, are dropped (the trainer's `from_fractions`, presets and `prunebench train`)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from prunebench.cli import main
from prunebench.errors import ConfigError
from prunebench.experiment.preset import parse_preset
from prunebench.train import Recipe


def test_fractions_that_round_to_epoch_zero_or_collide_are_dropped() -> None:
    assert Recipe.from_fractions(1, (0.5, 0.75), lr=0.1).milestones == ()
    two = Recipe.from_fractions(2, (0.5, 0.75), lr=0.1)
    assert two.milestones == (1,) and [two.lr_at(e) for e in (0, 1)] == pytest.approx([0.1, 0.01])
    assert Recipe.from_fractions(4, (0.5, 0.75), lr=0.1).milestones == (2, 3)  # long enough: unchanged
    # multipliers follow their milestones; one per fraction is still required
    r = Recipe.from_fractions(3, (0.1, 0.5, 0.9), lr=0.1, lr_multipliers=(10, 0.5, 0.2))
    assert r.milestones == (1, 2) and r.lr_multipliers == (0.5, 0.2)
    with pytest.raises(ConfigError, match="lr_multipliers"):
        Recipe.from_fractions(3, (0.5, 0.9), lr=0.1, lr_multipliers=(0.5,))


def _preset(**large: object) -> dict:
    return {
        "name": "short", "seeds": [0], "data": {"name": "fashion-mnist"}, "model": {"variant": "vgg11"},
        "methods": [{"name": "l1norm", "options": {"ratio": 0.5}}], "arms": {"unpruned": True},
        "recipes": {"large": {"epochs": 2, "lr": 0.1, **large}, "finetune": {"epochs": 1, "lr": 0.01}},
    }  # fmt: skip


def test_presets_drop_the_same_milestones() -> None:
    p = parse_preset(_preset(milestone_fractions=[0.5, 0.75]), "short.toml")
    assert p.large.milestones == (1,)
    p = parse_preset(_preset(epochs=1, milestone_fractions=[0.5, 0.75], lr_multipliers=[0.2, 0.2]), "s.toml")
    assert p.large.milestones == () and p.large.lr_multipliers == ()
    with pytest.raises(ConfigError, match=r"recipes.large.lr_multipliers: expected 2 values"):
        parse_preset(_preset(milestone_fractions=[0.5, 0.75], lr_multipliers=[0.2]), "s.toml")


@pytest.mark.parametrize("epochs, lrs", [(1, [0.1]), (2, [0.1, 0.01])])
def test_short_train_runs_use_the_requested_lr(tmp_path: Path, epochs: int, lrs: list[float]) -> None:
    out = tmp_path / "run"
    argv = ["train", "--arch", "resnet20", "--width-mult", "0.25", "--dataset", "digits", "--epochs", str(epochs),
            "--train-subset", "100", "--val-size", "0", "--precision", "fp32", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    with (out / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(epochs))
    assert [float(r["lr"]) for r in rows] == pytest.approx(lrs)
