"""`write_report(exp_dir)`: report.md, report.tex, PNG plots and results.csv/json from the store."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import Any

import numpy
import scipy
import torch

import prunebench
from prunebench.errors import PrunebenchError
from prunebench.experiment import Store
from prunebench.experiment.store import BACKWARD_MULTIPLIER, STORE_FILE
from prunebench.outputs import atomic_write_text
from prunebench.report.detection import detection_section
from prunebench.report.gamma import gamma_section
from prunebench.report.html import write_html
from prunebench.report.plots import curves_plot, sparsity_plot, tradeoff_plots, weight_histogram_plot, width_plot
from prunebench.report.stats import ALPHA
from prunebench.report.tables import MethodTable, build_tables, latex_table, markdown_table, paper_table, seed_coverage
from prunebench.report.verdict import verdict_latex, verdict_section

REPORT_FILE = "report.md"


def _load(exp_dir: Path) -> tuple[dict[str, Any], list[MethodTable], list[dict[str, Any]]]:
    if not (exp_dir / STORE_FILE).is_file():
        raise PrunebenchError(f"{exp_dir}: no {STORE_FILE} here; is this an experiment folder written by `prunebench run`?")
    store = Store.open(exp_dir)
    try:
        experiments = {e["name"]: e for e in store.experiments()}
        rows = store.rows()
        stages = [store.stage(sid) for sid in store.status()]
        if not rows:  # before any file is (re)written: an empty store never blanks the old results
            raise PrunebenchError(f"{exp_dir}: no finished results yet; run the experiment first")
        store.export(exp_dir)
    finally:
        store.close()
    return experiments, build_tables(rows, experiments), stages


def summary_table(exp_dir: str | Path) -> str:
    """The paper-layout Markdown table of an experiment folder (what `demo` prints)."""
    return paper_table(_load(Path(exp_dir))[1])


def write_report(exp_dir: str | Path) -> Path:
    """Write the report of the experiment folder `exp_dir`; returns the path of report.md."""
    exp_dir = Path(exp_dir)
    experiments, tables, stages = _load(exp_dir)
    md = [f"# prunebench report: {', '.join(experiments)}", ""]
    md += ["## Summary (the paper's layout)", "", paper_table(tables), ""]
    md += verdict_section(tables)  # which arms beat, match or lose to fine-tuned (report/verdict.py)
    md += detection_section(exp_dir)  # E8: the mAP table, backbone x arm (report/detection.py)
    md += _method_notes()
    for exp in experiments:
        ours = [t for t in tables if t.experiment == exp]
        if not ours:
            continue
        md += _experiment_section(exp, experiments[exp]["preset"], ours, exp_dir, stages)
    md += _provenance(experiments, stages)
    # every file goes through a temp name: a full disk mid-write leaves the previous report intact
    atomic_write_text(
        exp_dir / "report.tex", "% prunebench: mean (sample std) of the primary accuracy, %\n" + latex_table(tables) + "\n"
        + (f"\n% every arm against fine-tuned: paired difference, points\n{v}\n" if (v := verdict_latex(tables)) else "")
    )
    path = exp_dir / REPORT_FILE
    atomic_write_text(path, "\n".join(md) + "\n")
    write_html(exp_dir, md, title=md[0].lstrip("# "))  # report.html: the same content, plots inlined
    return path


def _method_notes() -> list[str]:
    return [
        "Accuracy cells: mean ± sample std (n - 1) over seeds, in %, with n the number of runs. "
        "95% CI: t-distribution. Scratch arms are compared with the fine-tuned arm by Welch's t-test "
        f"(α = {ALPHA}); with n < 2 in an arm the report cannot tell them apart. Where the arms share seeds "
        "(each scratch run is paired with the pruning run of its seed), a seed-paired t-test p-value follows. "
        "Best-on-test is the maximum test accuracy over epochs, as the reference scripts report it: "
        "reference-compatible and optimistic, never used for selection. "
        f"Training FLOPs = forward FLOPs per image × images seen × {BACKWARD_MULTIPLIER:g} (backward ≈ 2 forwards). "
        "FLOPs use the reference counting rule (sparse for masked models), user models (a `builder`) torch's dispatcher "
        "counter (each FLOPs cell names its rule); the FLOPs ratio is FLOPs(unpruned) / FLOPs(arm).",
        "",
    ]


def _experiment_section(
    exp: str, preset: dict[str, Any], tables: list[MethodTable], exp_dir: Path, stages: list[dict[str, Any]]
) -> list[str]:
    md = [f"## {exp}", ""]
    if preset.get("description"):
        md += [preset["description"], ""]
    md += [f"Primary number: {tables[0].primary}. {seed_coverage(tables, preset['seeds'])}.", ""]
    for note in preset.get("notes") or []:
        md.append(f"- {note}")
    md.append("")
    for t in tables:
        md += [f"### {t.dataset} / {t.model} / {t.method}", "", markdown_table(t), ""]
        histograms = weight_histogram_plot(t, exp_dir) if preset.get("weight_histograms") else None
        curves = curves_plot(t, exp_dir, _stage_metrics(exp_dir, t))
        for plot in (curves, width_plot(t, exp_dir), sparsity_plot(t, exp_dir), histograms):
            if plot:
                md += [f"![{plot.stem}]({plot.name})", ""]
        md += gamma_section(t, exp_dir, stages)  # slimming: |γ| before/after sparsity training
    for plot in tradeoff_plots(tables, exp_dir, exp, preset.get("methods") or []):  # std bars, 95% CI bands
        md += [f"![{plot.stem}]({plot.name})", ""]
    return md


def _stage_metrics(exp_dir: Path, t: MethodTable) -> dict[str, list[dict[str, Any]]]:
    """The per-epoch metrics the store holds for every stage of `t`'s arms (for the training curves)."""
    store = Store.open(exp_dir)
    try:
        return {r["stage_id"]: store.metrics(r["stage_id"]) for a in t.arms for r in a.rows}
    finally:
        store.close()


def _provenance(experiments: dict[str, dict[str, Any]], stages: list[dict[str, Any]]) -> list[str]:
    md = ["## Provenance", ""]
    md.append(
        f"prunebench {prunebench.__version__}, torch {torch.__version__}, numpy {numpy.__version__}, "
        f"scipy {scipy.__version__}, Python {sys.version.split()[0]} on {platform.platform()}."
    )
    for name, e in experiments.items():
        md.append(f"- {name}: preset `{e['file']}`, seeds planned by the last run {e['preset']['seeds']}")
    md += ["", "| Stage hash | Folder | Seed | Status | Style |", "|---|---|---|---|---|"]
    for s in sorted(stages, key=lambda s: (s["dir"], s["seed"] or 0)):
        md.append(f"| `{s['id']}` | {s['dir']} | {s['seed']} | {s['status']} | {s['style'] or ''} |")
    return md + [""]
