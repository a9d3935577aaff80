"""Trade-off curves over a method's amounts: which points join, and the 95% CI bands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from prunebench.report.plots import Point, tradeoff_plots, tradeoff_series
from prunebench.report.tables import build_tables

PRESET = {"seeds": [0, 1], "data": {"name": "digits", "val_size": 0}, "model": {"variant": "resnet20", "width_mult": 1}}
METHODS = [
    {"label": "l1@0.3", "name": "l1norm", "curve": "l1", "amount": 0.3},
    {"label": "l1@0.6", "name": "l1norm", "curve": "l1", "amount": 0.6},
    {"label": "other", "name": "l1norm", "curve": None, "amount": None},  # no amounts: not on a curve
]


def _row(method: str, arm: str, seed: int, acc: float, params: float) -> dict[str, Any]:
    return {
        "experiment": "e", "method": method, "arm": arm, "seed": seed, "primary_acc": acc, "best_test_acc_compat": None,
        "flops": 10 * params, "params_nonzero": params, "flops_mode": "reference", "latency_ms": None, "epochs": 1,
        "training_flops": None, "wall_s": None, "flops_ratio": None,
    }  # fmt: skip


def _tables() -> Any:
    rows = []
    for method, params, base in (("l1@0.6", 400.0, 0.70), ("l1@0.3", 700.0, 0.80), ("other", 500.0, 0.5)):
        for seed, noise in ((0, 0.01), (1, -0.01)):
            rows.append(_row(method, "finetuned", seed, base + noise, params))
            rows.append(_row(method, "scratch_e", seed, base - 0.05 + 2 * noise, params))
    return build_tables(rows, {"e": {"preset": {**PRESET, "methods": METHODS}}})


def _series(key: str = "params") -> dict[tuple[str, str], tuple[Point, ...]]:
    return {(s.method, s.arm): s.points for s in tradeoff_series(_tables(), key, METHODS)}


def test_one_series_per_method_and_arm_joining_only_its_amounts() -> None:
    series = _series()
    # the amounts of `l1` join; "other" (no amounts) is a series of its own, never on l1's line
    assert set(series) == {("l1", "finetuned"), ("l1", "scratch_e"), ("l1norm", "finetuned"), ("l1norm", "scratch_e")}
    assert all(p.label == "other" and p.amount is None for arm in ("finetuned", "scratch_e") for p in series[("l1norm", arm)])
    ft = series[("l1", "finetuned")]  # in x order: the larger amount has fewer parameters
    assert [p.amount for p in ft] == [0.6, 0.3] and [p.x for p in ft] == [400.0, 700.0]
    assert [p.mean for p in ft] == pytest.approx([70.0, 80.0]) and all(p.n == 2 for p in ft)
    se = series[("l1", "scratch_e")][1]  # 77 and 73: t(0.975, 1) * sd / sqrt(2) = 12.706 * 2 = 25.41 each side
    assert se.amount == 0.3
    assert se.lo == pytest.approx(75.0 - 25.41, abs=0.01) and se.hi == 100.0  # clipped: an accuracy is <= 100%
    assert [p.amount for p in _series("flops")[("l1", "finetuned")]] == [0.6, 0.3]  # the FLOPs axis joins the same


def test_bands_stay_inside_accuracy_bounds_and_plots_are_written(tmp_path: Path) -> None:
    tables = _tables()
    for p in (p for s in _series().values() for p in s):
        assert 0.0 <= p.lo <= p.mean <= p.hi <= 100.0
    paths = tradeoff_plots(tables, tmp_path, "e", METHODS)
    assert [p.name for p in paths][:1] == ["e-accuracy-vs-params.png"] and all(p.stat().st_size for p in paths)
    assert {p.name for p in paths} <= {"e-accuracy-vs-params.png", "e-accuracy-vs-flops.png",
                                       "e-accuracy-vs-params-by-method.png", "e-accuracy-vs-flops-by-method.png"}  # fmt: skip
    assert "e-accuracy-vs-flops.png" in {p.name for p in paths}
    # one implementation: no second set of trade-off figures beside these
    assert sorted(q.name for q in tmp_path.glob("*.png")) == sorted(p.name for p in paths)
