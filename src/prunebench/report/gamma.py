"""BN scales |γ| before and after sparsity training (Network Slimming): histogram and small-scale fraction.

Slimming's global threshold only means something when sparsity training has split the
scales into a large group and a group near zero; with too small a λ or too short a run the
scales stay around their initial value and the threshold ranks channels by noise. The
report therefore shows the |γ| distribution of the plainly trained large model ("before")
next to the sparsity-trained one ("after") and the fraction of scales below a small
threshold, read from the stored final checkpoints (what slimming pruned).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunebench.experiment.stages import STAGES_DIR
from prunebench.models.spec import attached_spec
from prunebench.prune.importance import bn_abs_gamma
from prunebench.report.plots import _save, _slug, plt
from prunebench.report.tables import MethodTable

#: |γ| below this counts as "small": a tenth of the zoo's slimming initial scale (0.5). Reported with the
#: threshold spelled out, next to the median, so that a reader can judge it.
SMALL_GAMMA = 0.05
HISTOGRAM_BINS = 60


def bn_scales(model: nn.Module) -> torch.Tensor:
    """|γ| of every BN-scaled channel group (the channels slimming ranks), concatenated."""
    groups = [g for g in attached_spec(model).groups() if g.bn is not None]
    if not groups:  # a user model (no zoo groups): every BN scale
        scales = [m.weight.detach().abs().float().cpu() for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.weight is not None]
        return torch.cat(scales) if scales else torch.zeros(0)
    return torch.cat([bn_abs_gamma(model, g).float().cpu() for g in groups])


@dataclass(frozen=True)
class GammaStats:
    """Summary of one set of |γ| values."""

    n: int
    median: float
    max: float
    small_fraction: float  # share of |γ| < SMALL_GAMMA

    @classmethod
    def of(cls, values: torch.Tensor) -> GammaStats:
        if not values.numel():
            return cls(0, 0.0, 0.0, 0.0)
        return cls(
            n=values.numel(),
            median=float(values.median()),
            max=float(values.max()),
            small_fraction=float((values < SMALL_GAMMA).float().mean()),
        )


def _config(stage: dict[str, Any]) -> dict[str, Any]:
    raw = stage.get("config") or {}
    return json.loads(raw) if isinstance(raw, str) else raw


def _training_kind(stage: dict[str, Any]) -> str | None:
    return (_config(stage).get("large_training") or {}).get("kind")


def _plain_twin(sparse: dict[str, Any], stages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The plainly trained large model of the same architecture, recipe and seed, if the
    experiment has one (slimming's `unpruned_plain` arm, or another method's large model)."""
    cfg = _config(sparse)
    for s in stages:
        c = _config(s)
        if (s["kind"] == "train_large" and s.get("status") == "done" and s["seed"] == sparse["seed"]
                and _training_kind(s) == "plain" and c.get("model") == cfg.get("model")
                and c.get("recipe") == cfg.get("recipe") and c.get("data") == cfg.get("data")):  # fmt: skip
            return s
    return None


def _scales(exp_dir: Path, stage: dict[str, Any]) -> torch.Tensor | None:
    from prunebench.train import load_model

    folder = exp_dir / STAGES_DIR / stage["dir"] / "final"
    if not folder.is_dir():
        return None
    model, _, _ = load_model(folder)
    return bn_scales(model)


def gamma_values(t: MethodTable, exp_dir: Path, stages: list[dict[str, Any]]) -> dict[str, torch.Tensor] | None:
    """{"before": plain |γ|, "after": sparsity-trained |γ|} pooled over seeds, or None when the
    method's large model is not sparsity-trained. "before" is missing without a plain twin."""
    unpruned = t.arm("unpruned")
    if unpruned is None:
        return None
    by_id = {s["id"]: s for s in stages}
    sparse = [by_id[r["stage_id"]] for r in unpruned.rows if r["stage_id"] in by_id]
    sparse = [s for s in sparse if _training_kind(s) == "sparsity"]
    if not sparse:
        return None
    out: dict[str, list[torch.Tensor]] = {"before": [], "after": []}
    for s in sorted(sparse, key=lambda s: s["seed"] or 0):
        twin = _plain_twin(s, stages)
        for key, stage in (("after", s), ("before", twin)):
            values = None if stage is None else _scales(exp_dir, stage)
            if values is not None:
                out[key].append(values)
    return {k: torch.cat(v) for k, v in out.items() if v} or None


def gamma_section(t: MethodTable, exp_dir: Path, stages: list[dict[str, Any]]) -> list[str]:
    """Markdown (a small table and the histogram plot) for a sparsity-trained method; [] otherwise."""
    unpruned = t.arm("unpruned")
    values = gamma_values(t, exp_dir, stages)
    if unpruned is None or not values or "after" not in values:
        return []
    labels = {"before": "before (plain training)", "after": "after sparsity training"}
    md = [
        f"BN scales |γ| of the large models ({len(unpruned.rows)} seeds pooled; median and max of |γ|; "
        f"small = the share with |γ| < {SMALL_GAMMA:g}):",
        "",
        "| Large model | Scales | Median | Max | Small |",  # no "|" inside cells: the HTML report splits on it
        "|---|---:|---:|---:|---:|",
    ]
    for key in ("before", "after"):
        if key in values:
            s = GammaStats.of(values[key])
            md.append(f"| {labels[key]} | {s.n} | {s.median:.4f} | {s.max:.3f} | {100 * s.small_fraction:.1f}% |")
    md.append("")
    plot = gamma_plot(t, values, exp_dir)
    return md + [f"![{plot.stem}]({plot.name})", ""]


def gamma_plot(t: MethodTable, values: dict[str, torch.Tensor], out_dir: Path) -> Path:
    """Histograms of |γ| before and after sparsity training on shared bins (log count axis:
    the near-zero group and the surviving group differ by orders of magnitude)."""
    top = max(float(v.max()) for v in values.values() if v.numel()) or 1.0
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for key, label in (("before", "before (plain training)"), ("after", "after sparsity training")):
        if key in values:
            ax.hist(values[key].numpy(), bins=HISTOGRAM_BINS, range=(0.0, top), histtype="step", linewidth=1.5, label=label)
    ax.axvline(SMALL_GAMMA, color="grey", linestyle=":", linewidth=1, label=f"|γ| = {SMALL_GAMMA:g}")
    ax.set_yscale("log")
    ax.set_xlabel("|γ| (BN scale)")
    ax.set_ylabel("channels")
    ax.set_title(f"{t.method}: BN scales of the large model")
    ax.legend(fontsize=8)
    return _save(fig, out_dir / f"{_slug(t.experiment)}-{_slug(t.method)}-gamma.png")
