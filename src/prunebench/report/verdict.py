"""The verdict of each arm against the pruning pipeline (fine-tuned), and its report lines.

Per method, every arm tested against fine-tuned gets the seed-paired difference in accuracy
points (95% t CI, bootstrap CI as a check), a paired t-test of "no difference" and a TOST
of "equivalent within ±margin".  The arms of one method are compared at once, so each of
the two families of p-values is Holm-corrected before the α = 0.05 decision:

- difference significant, 95% CI not inside ±margin: *better* / *worse*;
- equivalence shown (TOST, i.e. the 90% CI inside ±margin): *equivalent within ±margin*;
- neither: *inconclusive*, with the margin the seeds at hand resolve and the seed count that
  would resolve ±margin (`stats.seeds_needed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prunebench.report.stats import (
    ALPHA, MAX_SEEDS, POWER, PairedDifference, holm, paired_difference, paired_differences, resolvable_margin, seeds_needed,
    tost_p,
)  # fmt: skip

if TYPE_CHECKING:
    from prunebench.report.tables import MethodTable

DEFAULT_MARGIN = 0.5  # accuracy points; a preset's `[compare] margin`
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class ArmVerdict:
    arm: str
    label: str
    diff: PairedDifference  # arm - fine-tuned, accuracy points
    p_equiv: float | None  # TOST, uncorrected
    p_diff_holm: float | None
    p_equiv_holm: float | None
    margin: float
    kind: str  # "better" | "worse" | "equivalent" | "inconclusive"
    text: str  # the verdict with its evidence, one phrase


def judge(
    accuracy: dict[str, dict[int, float]], reference: dict[int, float], labels: dict[str, str], margin: float
) -> list[ArmVerdict]:
    """Verdicts of the arms in `accuracy` (arm -> seed -> accuracy in [0, 1]) against `reference`
    (seed -> accuracy), as one Holm family; `margin` in accuracy points."""
    arms = [a for a in accuracy if paired_differences(accuracy[a], reference)]
    diffs = {a: paired_difference([100 * d for d in paired_differences(accuracy[a], reference)], seed=BOOTSTRAP_SEED) for a in arms}
    p_equiv = {a: tost_p(diffs[a], margin) for a in arms}
    p_diff_holm = dict(zip(arms, holm([diffs[a].p for a in arms])))
    p_equiv_holm = dict(zip(arms, holm([p_equiv[a] for a in arms])))
    out = []
    for a in arms:
        kind, text = _decide(diffs[a], p_diff_holm[a], p_equiv_holm[a], margin)
        out.append(ArmVerdict(a, labels.get(a, a), diffs[a], p_equiv[a], p_diff_holm[a], p_equiv_holm[a], margin, kind, text))
    return out


def _decide(d: PairedDifference, p_diff: float | None, p_equiv: float | None, margin: float) -> tuple[str, str]:
    if d.sd is None:
        return "inconclusive", f"inconclusive: {d.n} paired seed, at least 2 needed ({_diff(d)})"
    inside = d.ci is not None and -margin < d.ci[0] and d.ci[1] < margin
    if p_diff is not None and p_diff < ALPHA and not inside:
        return ("better" if d.mean > 0 else "worse"), f"{'better' if d.mean > 0 else 'worse'} ({_evidence(d, p_diff, p_equiv)})"
    if p_equiv is not None and p_equiv < ALPHA:
        return "equivalent", f"equivalent within ±{margin:g} ({_evidence(d, p_diff, p_equiv)})"
    assert d.sd is not None
    x = resolvable_margin(d.sd, d.n)
    m = seeds_needed(d.sd, margin)
    need = f"about {m} seeds would be needed for ±{margin:g}" if m else f"more than {MAX_SEEDS} seeds would be needed for ±{margin:g}"
    return "inconclusive", f"inconclusive: {d.n} seeds resolve ±{x:.2f} points, {need} ({_evidence(d, p_diff, p_equiv)})"


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def _diff(d: PairedDifference) -> str:
    return f"{d.mean:+.2f} points"


def _evidence(d: PairedDifference, p_diff: float | None, p_equiv: float | None) -> str:
    assert d.ci is not None and d.boot_ci is not None
    return (
        f"{_diff(d)}, 95% CI [{d.ci[0]:+.2f}, {d.ci[1]:+.2f}], bootstrap [{d.boot_ci[0]:+.2f}, {d.boot_ci[1]:+.2f}], "
        f"n = {d.n}; Holm p = {_p(p_diff)}, TOST Holm p = {_p(p_equiv)}"
    )


# -- report lines ---------------------------------------------------------------------------------


def verdict_line(t: MethodTable) -> list[str]:
    """One line per method: which arms beat, match or lose to the pruning pipeline; then the
    evidence of each arm as a sub-item."""
    if not t.verdicts:
        return []
    groups: dict[str, list[str]] = {}
    for v in t.verdicts:
        groups.setdefault(v.kind, []).append(v.label + (f" (±{v.margin:g})" if v.kind == "equivalent" else ""))
    heads = {"better": "beat it", "equivalent": "match it", "worse": "lose to it", "inconclusive": "undecided"}
    parts = [f"{heads[k]}: " + ", ".join(groups[k]) for k in heads if k in groups]
    return [f"- **{t.method}** vs fine-tuned: " + "; ".join(parts) + "."] + [f"  - {v.label}: {v.text}" for v in t.verdicts]


def verdict_section(tables: Sequence[MethodTable]) -> list[str]:
    """The summary's verdict lines and how they were decided (empty when no arm was compared)."""
    lines = [line for t in tables for line in verdict_line(t)]
    if not lines:
        return []
    margins = sorted({v.margin for t in tables for v in t.verdicts})
    return [
        "### Verdicts against the pruning pipeline (fine-tuned)", "",
        f"Seed-paired difference (arm - fine-tuned, accuracy points) with its 95% t CI and a seeded bootstrap CI. "
        f"Per method the arms are tested at once, so the paired t-test p-values and the equivalence (TOST, margin "
        f"±{'/'.join(f'{m:g}' for m in margins)} points, the preset's `[compare] margin`) p-values are each Holm-corrected; "
        f"α = {ALPHA}. *Better*/*worse*: a significant difference whose CI leaves the margin; *equivalent*: TOST "
        f"significant; otherwise *inconclusive*, with the margin the seeds at hand resolve and the seeds needed for "
        f"the preset's margin ({POWER:.0%} power if the arms are truly equal).", "",
        *lines, "",
    ]  # fmt: skip


def verdict_latex(tables: Sequence[MethodTable]) -> str:
    """Every compared arm (new baselines included) with its accuracy, paired difference and verdict."""
    from prunebench.report.tables import _tex  # the one LaTeX escaper (tables imports this module)

    rows = [(t, v) for t in tables for v in t.verdicts]
    if not rows:
        return ""
    lines = ["\\begin{tabular}{llrrl}", "\\toprule",
             "Method & Arm & Accuracy & $\\Delta$ vs fine-tuned [95\\% CI] & Verdict \\\\", "\\midrule"]  # fmt: skip
    for t, v in rows:
        a: Any = t.arm(v.arm)
        acc = f"{100 * a.acc.mean:.2f}" if a is not None else "--"
        ci = f" [{v.diff.ci[0]:+.2f}, {v.diff.ci[1]:+.2f}]" if v.diff.ci else ""
        kind = f"equivalent ($\\pm${v.margin:g})" if v.kind == "equivalent" else v.kind
        lines.append(f"{_tex(t.method)} & {_tex(v.label)} & {acc} & {v.diff.mean:+.2f}{ci} & {kind} \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines)
