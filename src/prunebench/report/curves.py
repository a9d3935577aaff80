"""Trade-off curves (Blalock et al. 2020): accuracy vs FLOPs and vs parameters over a method's amounts.

A preset's `amounts = [...]` turns one method entry into one method per amount
(`<label>@<amount>`, `MethodConfig.curve` / `.amount`).  Each (method, arm) is one series:
its line joins that series' amounts only, with the 95% t CI of the mean as a band; the
colour says the arm, the marker the method.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.ticker import NullFormatter

from prunebench.report.plots import _save, _slug, plt
from prunebench.report.tables import MethodTable, arm_label, arm_order

MARKERS = "osD^vP*X"


@dataclass(frozen=True)
class CurvePoint:
    amount: float
    params: float | None
    flops: float | None
    mean: float  # accuracy, %
    lo: float  # 95% CI, % (the mean when n < 2), clipped to [0, 100]
    hi: float
    n: int


def curve_series(tables: list[MethodTable], methods: list[dict[str, Any]]) -> dict[tuple[str, str], list[CurvePoint]]:
    """(method label, arm) -> its points in amount order, from the tables of the amounts of
    `methods` (the preset's method entries as stored: `label`, `curve`, `amount`)."""
    where = {m["label"]: (m["curve"], m["amount"]) for m in methods if m.get("curve") is not None}
    series: dict[tuple[str, str], list[CurvePoint]] = {}
    for t in tables:
        if t.method not in where:
            continue
        curve, amount = where[t.method]
        for a in t.arms:
            lo, hi = a.acc.ci if a.acc.ci else (a.acc.mean, a.acc.mean)
            lo, hi = max(lo, 0.0), min(hi, 1.0)  # an accuracy's band stays inside [0, 100]%
            point = CurvePoint(amount, a.params, a.flops, 100 * a.acc.mean, 100 * lo, 100 * hi, a.acc.n)
            series.setdefault((curve, a.arm), []).append(point)
    return {k: sorted(v, key=lambda p: p.amount) for k, v in series.items()}


def curve_plots(tables: list[MethodTable], out_dir: Path, experiment: str, methods: list[dict[str, Any]]) -> list[Path]:
    """Accuracy vs non-zero parameters and vs FLOPs, one line per (method, arm); [] without amounts."""
    series = curve_series(tables, methods)
    if not series:
        return []
    curves = sorted({c for c, _ in series})
    arms = sorted({a for _, a in series}, key=arm_order)
    colours = {a: f"C{i % 10}" for i, a in enumerate(arms)}
    paths = []
    for key, label in (("params", "non-zero parameters"), ("flops", "FLOPs per image (reference rule)")):
        fig, ax = plt.subplots(figsize=(8, 5))
        for (curve, arm), pts in sorted(series.items(), key=lambda kv: (kv[0][0], arm_order(kv[0][1]))):
            pts = sorted((p for p in pts if getattr(p, key)), key=lambda p: getattr(p, key))
            if not pts:
                continue
            xs = [getattr(p, key) for p in pts]
            marker = MARKERS[curves.index(curve) % len(MARKERS)]
            ax.plot(xs, [p.mean for p in pts], color=colours[arm], marker=marker, linestyle="-", label=f"{curve}: {arm_label(arm)}")
            ax.fill_between(xs, [p.lo for p in pts], [p.hi for p in pts], color=colours[arm], alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # a narrow x range labels its minor ticks on top of each other
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%), 95% CI band")
        ax.set_title(f"{experiment}: accuracy vs {label.split(' (')[0]} over the pruning amounts")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: bands stay visible
        paths.append(_save(fig, out_dir / f"{_slug(experiment)}-curve-{key}.png"))
    return paths
