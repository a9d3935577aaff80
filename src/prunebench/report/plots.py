"""PNG plots of a report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from prunebench.report.tables import MethodTable, arm_label, arm_order  # noqa: E402


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in s)


def _save(fig: Any, path: Path) -> Path:
    """Lay out, write the PNG and free the figure (pyplot keeps every open figure alive)."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def tradeoff_plots(tables: list[MethodTable], out_dir: Path, experiment: str) -> list[Path]:
    """Accuracy vs non-zero params and vs FLOPs, error bars = sample std, one series per arm."""
    paths = []
    for key, label in (("params", "non-zero parameters"), ("flops", "FLOPs per image (reference rule)")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        series: dict[str, list[tuple[float, float, float, str]]] = {}
        for t in tables:
            for a in t.arms:
                x = getattr(a, key)
                if x:
                    series.setdefault(a.arm, []).append((x, 100 * a.acc.mean, 100 * (a.acc.std or 0.0), t.method))
        for arm in sorted(series, key=arm_order):
            pts = sorted(series[arm])
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                        marker="o", capsize=3, linestyle="-" if len(pts) > 1 else "none", label=arm_label(arm))  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{experiment}: accuracy vs {label.split(' (')[0]}")
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=7)
        paths.append(_save(fig, out_dir / f"{_slug(experiment)}-accuracy-vs-{key}.png"))
    return paths


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
