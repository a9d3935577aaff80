"""PNG plots of a report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import EngFormatter, LogLocator, MaxNLocator, NullFormatter  # noqa: E402

from prunebench.outputs import atomic_file  # noqa: E402
from prunebench.report.tables import MethodTable, arm_label, arm_order  # noqa: E402


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in s)


def _save(fig: Any, path: Path, rect: tuple[float, float, float, float] | None = None) -> Path:
    """Lay out (within `rect` of the figure), write the PNG and free the figure (pyplot keeps
    every open figure alive)."""
    try:
        fig.tight_layout(rect=rect)
        with atomic_file(path) as f:  # the old PNG stays until the new one is complete
            fig.savefig(f, format="png", dpi=110, bbox_inches="tight")  # keeps legends placed outside the axes
    finally:
        plt.close(fig)
    return path


#: What the marks of a trade-off plot are, said in every trade-off plot's legend.
ERROR_BAR = "error bars: ±1 sample std over seeds (none when n = 1)"
BAND = "shaded: 95% t CI of the mean (n ≥ 2)"
LEGEND = f"{ERROR_BAR}\n{BAND}"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
AXES = (("params", "non-zero parameters"), ("flops", "FLOPs per image (reference rule)"))
DODGE = 0.008  # log10 offset between the series of one axes, so that none hides another


@dataclass(frozen=True)
class Point:
    x: float
    mean: float  # accuracy, %
    err: float  # sample std, % (0 when n = 1)
    n: int
    label: str  # the method label this point comes from (its amount)
    amount: float | None = None  # the preset's amount (`amounts = [...]`); None for a single entry
    ci: tuple[float, float] | None = None  # 95% t CI of the mean, %, inside [0, 100]; None when n < 2

    @property
    def lo(self) -> float:
        return self.ci[0] if self.ci else self.mean

    @property
    def hi(self) -> float:
        return self.ci[1] if self.ci else self.mean


@dataclass(frozen=True)
class Series:
    """One line of a trade-off plot: one method (family) and one arm, over that method's amounts."""

    method: str
    arm: str
    points: tuple[Point, ...]


def method_family(label: str, families: Mapping[str, str] | None = None) -> str:
    """The method a table's label belongs to (`l1norm-50%`, `l1@0.5` -> `l1norm`, `l1`): from the
    preset when given."""
    if families and label in families:
        return families[label]
    return re.split("[-@]", label)[0]


def tradeoff_series(tables: list[MethodTable], key: str, methods: Sequence[Mapping[str, Any]] = ()) -> list[Series]:
    """The data behind a trade-off plot: one series per (method, arm), each joining only that
    method's amounts, sorted by x; arms without an x value (`key` = "params" or "flops") are left out.
    `methods` are the preset's method entries as stored (`label`, `name`, and with `amounts = [...]`
    `curve` and `amount`): a method is `curve` or else `name`."""
    families = {m["label"]: m.get("curve") or m["name"] for m in methods}
    amounts = {m["label"]: m.get("amount") for m in methods}
    found: dict[tuple[str, str], list[Point]] = {}
    for t in tables:
        for a in t.arms:
            x = getattr(a, key)
            if x:
                band = (100 * max(a.acc.ci[0], 0.0), 100 * min(a.acc.ci[1], 1.0)) if a.acc.ci else None
                point = Point(float(x), 100 * a.acc.mean, 100 * (a.acc.std or 0.0), a.acc.n, t.method,
                              amounts.get(t.method), band)  # fmt: skip
                found.setdefault((method_family(t.method, families), a.arm), []).append(point)
    names = sorted({m for m, _ in found})
    order = sorted(found, key=lambda k: (names.index(k[0]), arm_order(k[1])))
    return [Series(m, arm, tuple(sorted(found[(m, arm)], key=lambda p: (p.x, p.label)))) for m, arm in order]


def overlapping(series: list[Series], *, rel_x: float = 0.05) -> bool:
    """Whether two series of different methods have points within `rel_x` of each other in x whose
    error bars overlap (or whose means are within half a point): then the combined plot is hard to read."""
    for i, a in enumerate(series):
        for b in series[i + 1:]:
            if a.method == b.method:
                continue
            for p in a.points:
                for q in b.points:
                    if abs(p.x - q.x) <= rel_x * max(p.x, q.x) and abs(p.mean - q.mean) <= p.err + q.err + 0.5:
                        return True
    return False


def _arm_colors(series: list[Series]) -> dict[str, Any]:
    arms = sorted({s.arm for s in series}, key=arm_order)
    cmap = plt.get_cmap("tab10")
    return {arm: cmap(i % 10) for i, arm in enumerate(arms)}


def _draw(ax: Any, series: list[Series], colors: dict[str, Any], markers: dict[str, str], *, with_method: bool) -> None:
    for i, s in enumerate(series):
        shift = 10 ** (DODGE * (i - (len(series) - 1) / 2))
        xs, color = [p.x * shift for p in s.points], colors[s.arm]
        label = f"{s.method} · {arm_label(s.arm)}" if with_method else arm_label(s.arm)
        ax.errorbar(xs, [p.mean for p in s.points], yerr=[p.err for p in s.points], color=color, marker=markers[s.method],
                    markersize=6, capsize=3, linestyle="-" if len(s.points) > 1 else "none", label=label)  # fmt: skip
        if not any(p.ci for p in s.points):
            continue
        if len(s.points) > 1:  # the band follows the line
            ax.fill_between(xs, [p.lo for p in s.points], [p.hi for p in s.points], color=color, alpha=0.08, linewidth=0)
        else:  # one point: the band is a wide translucent bar behind it
            ax.vlines(xs, [p.lo for p in s.points], [p.hi for p in s.points], color=color, alpha=0.2, linewidth=8)
    ax.set_xscale("log")
    # named ticks (200k, 1.5M), denser the fewer decades the axis spans: a range inside one decade
    # still gets labels; minor ticks stay unlabelled (they would print on top of each other)
    lo, hi = ax.get_xlim()
    decades = math.log10(hi / lo) if lo > 0 else 9.0
    subs = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0) if decades < 1 else (1.0, 2.0, 5.0) if decades < 3 else (1.0,)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)


def tradeoff_plots(
    tables: list[MethodTable], out_dir: Path, experiment: str, methods: Sequence[Mapping[str, Any]] = ()
) -> list[Path]:
    """Accuracy vs non-zero params and vs FLOPs: one line per (method, arm) over its amounts
    (Blalock et al. 2020), a marker per method, a colour per arm, std bars and 95% CI bands;
    plus one panel per method when series of different methods overlap."""
    paths = []
    sweep = " over the pruning amounts" if any(m.get("amount") is not None for m in methods) else ""
    for key, label in AXES:
        series = tradeoff_series(tables, key, methods)
        names = sorted({s.method for s in series})
        colors, markers = _arm_colors(series), {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(names)}
        fig, ax = plt.subplots(figsize=(8.5, 4.8))
        _draw(ax, series, colors, markers, with_method=True)
        ax.set_xlabel(f"{label}; arms at the same x drawn slightly apart")
        ax.set_title(f"{experiment}: accuracy vs {label.split(' (')[0]}{sweep}")
        if series:
            ax.legend(fontsize=7, title=LEGEND, title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
        paths.append(_save(fig, out_dir / f"{_slug(experiment)}-accuracy-vs-{key}.png"))
        if len(names) > 1 and overlapping(series):
            paths.append(_panels(series, names, colors, markers, label, out_dir / f"{_slug(experiment)}-accuracy-vs-{key}-by-method.png", experiment))
    return paths


def _panels(series: list[Series], methods: list[str], colors: dict[str, Any], markers: dict[str, str],
            label: str, path: Path, experiment: str) -> Path:  # fmt: skip
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 4.2), sharey=True, squeeze=False)
    for ax, method in zip(axes[0], methods):
        _draw(ax, [s for s in series if s.method == method], colors, markers, with_method=False)
        ax.set_title(method, fontsize=10)
        ax.set_xlabel(label.split(" (")[0], fontsize=8)
    handles: dict[str, Any] = {}
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    ncol = min(len(handles), 4)
    fig.legend(list(handles.values()), list(handles), fontsize=7, title=LEGEND, title_fontsize=7,
               loc="lower center", ncol=ncol, bbox_to_anchor=(0.5, 0.0))  # fmt: skip
    fig.suptitle(f"{experiment}: accuracy vs {label.split(' (')[0]}, one panel per method", fontsize=10)
    lines = -(-len(handles) // ncol) + LEGEND.count("\n") + 1  # legend rows + title lines, kept below the axes
    return _save(fig, path, rect=(0, min(0.045 * lines + 0.01, 0.5), 1, 1))


def _numeric(widths: list[Any]) -> list[float]:
    return [float(w) for w in widths if isinstance(w, int | float) and not isinstance(w, bool)]


def width_plot(t: MethodTable, out_dir: Path) -> Path | None:
    """Per-layer widths of the original vs the pruned network (mean over seeds)."""
    base = t.arm("unpruned")
    pruned = t.arm("pruned_no_ft") or t.arm("finetuned")
    if not base or not pruned:
        return None
    original = _numeric(base.rows[0]["arch"]["widths"])
    runs = [_numeric(r["arch"]["widths"]) for r in pruned.rows if r.get("arch")]
    runs = [w for w in runs if len(w) == len(original)]
    if not original or not runs or all(w == original for w in runs):  # masked models keep their widths
        return None
    mean = [sum(ws) / len(ws) for ws in zip(*runs)]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    xs = range(len(original))
    ax.bar([x - 0.2 for x in xs], original, width=0.4, label="original")
    ax.bar([x + 0.2 for x in xs], mean, width=0.4, label=f"pruned (mean of {len(runs)})")
    ax.set_xlabel("layer")
    ax.set_ylabel("width (channels / units)")
    ax.set_title(f"{t.method}: per-layer width")
    ax.legend(fontsize=8)
    return _save(fig, out_dir / f"{_slug(t.experiment)}-{_slug(t.method)}-widths.png")


def sparsity_plot(t: MethodTable, out_dir: Path) -> Path | None:
    """Per-layer density from the magnitude method's analysis data, when the prune run has it."""
    pruned = t.arm("pruned_no_ft") or t.arm("finetuned")
    if not pruned:
        return None
    found = [(r.get("info") or {}).get("layers") for r in pruned.rows]
    runs: list[list[dict[str, Any]]] = [
        layers for layers in found if layers and all("kept" in x and "total" in x for x in layers)
    ]
    if not runs:
        return None
    names = [x["layer"] for x in runs[0]]
    dens = [[x["kept"] / x["total"] if x["total"] else 0.0 for x in layers] for layers in runs if len(layers) == len(names)]
    mean = [sum(d) / len(d) for d in zip(*dens)]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(range(len(names)), mean)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_ylim(0, 1)
    ax.set_ylabel("kept weight fraction")
    ax.set_title(f"{t.method}: per-layer density (mean of {len(dens)} runs)")
    return _save(fig, out_dir / f"{_slug(t.experiment)}-{_slug(t.method)}-sparsity.png")


HISTOGRAM_ARMS = ("unpruned", "finetuned", "scratch_e")


def weight_histogram_plot(t: MethodTable, exp_dir: Path) -> Path | None:
    """Histograms of the non-zero conv weights of the first seed's unpruned, fine-tuned and
    Scratch-E models (E14: a fine-tuned unstructured model keeps a gap around zero)."""
    from prunebench.train import load_model

    fig, ax = plt.subplots(figsize=(7, 3.5))
    drawn = 0
    for arm in HISTOGRAM_ARMS:
        stats = t.arm(arm)
        if not stats:
            continue
        row = min(stats.rows, key=lambda r: r["seed"])
        folder = exp_dir / "stages" / f"{row['kind']}-{row['stage_id'][:12]}" / "final"
        if not folder.is_dir():
            continue
        model, _, _ = load_model(folder)
        values = torch.cat([p.detach().flatten() for p in model.parameters() if p.dim() == 4])
        values = values[values != 0]
        ax.hist(values.numpy(), bins=200, histtype="step", density=True, label=f"{arm_label(arm)} (seed {row['seed']})")
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("conv weight value (non-zero)")
    ax.set_ylabel("density")
    ax.set_title(f"{t.method}: conv weight distributions")
    ax.legend(fontsize=7)
    return _save(fig, exp_dir / f"{_slug(t.experiment)}-{_slug(t.method)}-weights.png")


def curves_series(t: MethodTable, metrics: Mapping[str, list[dict[str, Any]]], key: str) -> dict[str, list[tuple[int, float]]]:
    """Per arm, the per-epoch mean over seeds of metric `key` (the store's per-epoch metrics);
    arms without that metric (e.g. pruned, not trained) are left out."""
    out: dict[str, list[tuple[int, float]]] = {}
    for a in t.arms:
        by_epoch: dict[int, list[float]] = {}
        for r in a.rows:
            for m in metrics.get(r["stage_id"], []):
                if m.get(key) is not None:
                    by_epoch.setdefault(int(m["epoch"]), []).append(float(m[key]))
        if by_epoch:
            out[a.arm] = [(e + 1, sum(v) / len(v)) for e, v in sorted(by_epoch.items())]
    return out


CURVES = (("train_loss", "training loss", "-"), ("val_loss", "validation loss", "--"),
          ("train_acc", "training accuracy", "-"), ("val_acc", "validation accuracy", "--"))  # fmt: skip


def curves_plot(t: MethodTable, out_dir: Path, metrics: Mapping[str, list[dict[str, Any]]]) -> Path | None:
    """Training curves per arm (mean over seeds): loss on the left, accuracy on the right."""
    drawn = {key: curves_series(t, metrics, key) for key, _, _ in CURVES}
    if not any(drawn.values()):
        return None
    arms = sorted({arm for series in drawn.values() for arm in series}, key=arm_order)
    cmap = plt.get_cmap("tab10")
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, label, style in CURVES:
        ax = loss_ax if key.endswith("loss") else acc_ax
        scale = 1.0 if key.endswith("loss") else 100.0
        for arm, pts in drawn[key].items():
            ax.plot([e for e, _ in pts], [scale * v for _, v in pts], style, color=cmap(arms.index(arm) % 10),
                    marker=".", label=f"{arm_label(arm)}, {label.split()[0]}")  # fmt: skip
    loss_ax.set_ylabel("cross-entropy")
    acc_ax.set_ylabel("accuracy (%)")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    acc_ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), title="mean over seeds", title_fontsize=7)
    fig.suptitle(f"{t.method}: training curves per arm", fontsize=10)
    return _save(fig, out_dir / f"{_slug(t.experiment)}-{_slug(t.method)}-curves.png")
