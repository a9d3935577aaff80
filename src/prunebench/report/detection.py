"""The detection-transfer table (E8) in the paper's layout: backbone x arm, VOC07 mAP mean ± std over seeds."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from prunebench.report.stats import summarize

#: result arm -> column header, in the paper's order
COLUMNS = {"det_unpruned": "Unpruned", "det_prune_c": "Prune-C", "det_prune_d": "Prune-D",
           "det_scratch_e": "Scratch-E", "det_scratch_b": "Scratch-B"}  # fmt: skip


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    s = summarize([100 * v for v in values])
    spread = f" ± {s.std:.1f}" if len(values) > 1 else ""
    return f"{s.mean:.1f}{spread} (n={len(values)})"


def detection_table(rows: list[dict[str, Any]], key: str = "map11") -> str:
    """Markdown: one row per (experiment, backbone = method label), one column per detection arm."""
    cells: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        info = r.get("info") or {}
        if r["arm"] in COLUMNS and info.get("task") == "detection" and info.get(key) is not None:
            cells[(r["experiment"], r["method"])][r["arm"]].append(float(info[key]))
    if not cells:
        return ""
    arms = [a for a in COLUMNS if any(a in c for c in cells.values())]
    lines = ["| experiment | backbone | " + " | ".join(COLUMNS[a] for a in arms) + " |",
             "|---|---|" + "---|" * len(arms)]  # fmt: skip
    for (exp, method), by_arm in sorted(cells.items()):
        lines.append(f"| {exp} | {method} | " + " | ".join(_cell(by_arm.get(a, [])) for a in arms) + " |")
    return "\n".join(lines)


def detection_section(exp_dir: Path) -> list[str]:
    """The report's detection section (nothing when the experiment has no detection results)."""
    from prunebench.experiment import Store

    store = Store.open(exp_dir)
    try:
        rows = store.rows()
    finally:
        store.close()
    table = detection_table(rows)
    if not table:
        return []
    return [
        "## Detection transfer (Faster R-CNN, PASCAL VOC 2007 test)", "",
        "VOC07 11-point mAP, %, mean ± sample std over seeds (n runs). Prune-C: the pruned and fine-tuned "
        "classifier transferred; Prune-D: the unpruned backbone trained on detection, then pruned and fine-tuned "
        "on detection; Scratch-E/B: the pruned architecture trained from scratch on classification, transferred.", "",
        table, "", "All-point AP (the VOC2010+ area), %:", "", detection_table(rows, "map_all"), "",
    ]  # fmt: skip
