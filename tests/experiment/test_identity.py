"""Stage identities are pinned: if one of these changes, every stored run is orphaned.

Change SCHEMA_VERSION (and these literals) only on purpose."""

from __future__ import annotations

import pytest

from prunebench.experiment.identity import SCHEMA_VERSION, canonical_json, derived_seed, non_default, stage_identity

CONFIG = {"recipe": {"epochs": 160, "lr": 0.1, "milestones": [80, 120]}, "data": {"name": "cifar10", "split_hash": None}}


def test_schema_version_is_pinned() -> None:
    assert SCHEMA_VERSION == 1


def test_canonical_json_is_order_free_and_int_float_blind() -> None:
    assert canonical_json({"b": 1.0, "a": (1, 2)}) == canonical_json({"a": [1, 2], "b": 1}) == '{"a":[1,2],"b":1}'


def test_pinned_identities(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("prunebench.__version__", "0.1.0")  # the code version is hashed in; pin it here
    assert stage_identity("train_large", CONFIG, {}, 0) == PINNED_LARGE
    assert stage_identity("prune", {"method": "l1norm", "options": {"ratio": 0.5}}, {"large": PINNED_LARGE}, 0) == PINNED_PRUNE
    assert derived_seed(3, "scratch_e") == PINNED_SEED


def test_every_input_changes_the_identity() -> None:
    base = stage_identity("train_large", CONFIG, {}, 0)
    others = {
        stage_identity("train_large", CONFIG, {}, 1),
        stage_identity("scratch_e", CONFIG, {}, 0),
        stage_identity("train_large", {**CONFIG, "recipe": {**CONFIG["recipe"], "lr": 0.01}}, {}, 0),
        stage_identity("train_large", CONFIG, {"large": "0" * 64}, 0),
    }
    assert base not in others and len(others) == 4


PINNED_LARGE = "931541c49d7a561b23c2f3b94effba3b9e26932d44dbab91a5d27466272875db"
PINNED_PRUNE = "65a83450c98e809b683202e4fc4f3e0e9cd3cf7d994d6866058e1bb608c9a474"
PINNED_SEED = 1205129438


def test_only_non_default_fields_enter_identities() -> None:
    from dataclasses import dataclass, field

    @dataclass
    class Old:
        ratio: float
        skip: tuple[str, ...] = ()

    @dataclass
    class New(Old):  # a later version adds an option whose default changes nothing
        scoring: str = "independent"
        extra: list[int] = field(default_factory=list)

    assert non_default(Old(0.5)) == non_default(New(0.5)) == {"ratio": 0.5}
    assert non_default(New(0.5, skip=("a",), scoring="greedy")) == {"ratio": 0.5, "skip": ["a"], "scoring": "greedy"}
