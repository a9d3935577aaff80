"""Trade-off curves over a method's amounts: which points join, and the 95% CI bands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from prunebench.report.curves import curve_plots, curve_series
from prunebench.report.tables import build_tables

PRESET = {"seeds": [0, 1], "data": {"name": "digits", "val_size": 0}, "model": {"variant": "resnet20", "width_mult": 1}}
METHODS = [
    {"label": "l1@0.3", "curve": "l1", "amount": 0.3},
    {"label": "l1@0.6", "curve": "l1", "amount": 0.6},
    {"label": "other", "curve": None, "amount": None},  # no amounts: not on a curve
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


def test_one_series_per_method_and_arm_joining_only_its_amounts() -> None:
    series = curve_series(_tables(), METHODS)
    assert set(series) == {("l1", "finetuned"), ("l1", "scratch_e")}  # "other" has no amounts
    ft = series[("l1", "finetuned")]
    assert [p.amount for p in ft] == [0.3, 0.6] and [p.params for p in ft] == [700.0, 400.0]
    assert [p.mean for p in ft] == pytest.approx([80.0, 70.0]) and all(p.n == 2 for p in ft)
    se = series[("l1", "scratch_e")][0]  # 77 and 73: t(0.975, 1) * sd / sqrt(2) = 12.706 * 2 = 25.41 each side
    assert se.lo == pytest.approx(75.0 - 25.41, abs=0.01) and se.hi == 100.0  # clipped: an accuracy is <= 100%


def test_bands_stay_inside_accuracy_bounds_and_plots_are_written(tmp_path: Path) -> None:
    tables = _tables()
    for p in (p for s in curve_series(tables, METHODS).values() for p in s):
        assert 0.0 <= p.lo <= p.mean <= p.hi <= 100.0
    paths = curve_plots(tables, tmp_path, "e", METHODS)
    assert [p.name for p in paths] == ["e-curve-params.png", "e-curve-flops.png"] and all(p.stat().st_size for p in paths)
    assert curve_plots(tables, tmp_path, "e", METHODS[2:]) == []
