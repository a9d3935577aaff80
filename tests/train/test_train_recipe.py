"""Recipe: schedules (lr_at), fractions, JSON round trip and validation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from prunebench.errors import ConfigError
from prunebench.train import Recipe


def test_standard_cifar_schedule_from_fractions() -> None:
    r = Recipe.from_fractions(160, (0.5, 0.75), lr=0.1)
    assert r.milestones == (80, 120)
    lrs = {e: r.lr_at(e) for e in (0, 79, 80, 119, 120, 159)}
    assert lrs[0] == lrs[79] == 0.1
    assert lrs[80] == pytest.approx(0.01) and lrs[119] == pytest.approx(0.01)
    assert lrs[120] == pytest.approx(0.001) and lrs[159] == pytest.approx(0.001)


def test_fractions_round_down() -> None:
    assert Recipe.from_fractions(7, (0.5, 0.75), lr=0.1).milestones == (3, 5)


def test_sfp_warmup_schedule_with_multipliers() -> None:
    r = Recipe(epochs=200, lr=0.01, milestones=(1, 60, 120, 160), lr_multipliers=(10, 0.2, 0.2, 0.2))
    got = [r.lr_at(e) for e in (0, 1, 59, 60, 120, 160, 199)]
    assert got == pytest.approx([0.01, 0.1, 0.1, 0.02, 0.004, 0.0008, 0.0008])


def test_constant_lr_and_milestones_past_the_end() -> None:
    ft = Recipe(epochs=40, lr=0.001)
    assert {ft.lr_at(e) for e in range(40)} == {0.001}
    never = Recipe(epochs=40, lr=0.001, milestones=(41, 42))  # the weight-level script's no-op milestones
    assert never.lr_at(39) == 0.001


def test_numpy_integers_are_accepted() -> None:
    r = Recipe(epochs=np.int64(10), lr=0.1, milestones=[np.int64(5), 8.0])
    assert r.epochs == 10 and type(r.epochs) is int and r.milestones == (5, 8)


def test_json_round_trip() -> None:
    r = Recipe.from_fractions(10, (0.5,), lr=0.05, nesterov=True, weight_decay=5e-4, precision="fp32",
                              channels_last=False, lr_multipliers=[0.2])
    back = Recipe.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r and hash(back) == hash(r)


@pytest.mark.parametrize(
    "kw",
    [
        {"epochs": 0, "lr": 0.1},
        {"epochs": 5, "lr": -1.0},
        {"epochs": 5, "lr": 0.1, "milestones": (3, 2)},
        {"epochs": 5, "lr": 0.1, "milestones": (0.5,)},  # fractions belong in from_fractions
        {"epochs": 2.5, "lr": 0.1},
        {"epochs": 5, "lr": 0.1, "milestones": (2,), "lr_multipliers": (0.1, 0.1)},
        {"epochs": 5, "lr": 0.1, "precision": "fp16"},
        {"epochs": 5, "lr": 0.1, "momentum": 0.0, "nesterov": True},
        {"epochs": 5, "lr": 0.1, "channels_last": "yes"},
    ],
)
def test_invalid_recipes_are_config_errors(kw: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Recipe(**kw)  # type: ignore[arg-type]


def test_unknown_key_and_bad_fraction() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        Recipe.from_dict({"epochs": 3, "lr": 0.1, "warmup": 2})
    with pytest.raises(ConfigError, match="fractions"):
        Recipe.from_fractions(10, (1.5,), lr=0.1)
