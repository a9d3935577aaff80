"""Group result rows into per-(data set, model, method) arm summaries and format them."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from prunebench.experiment import ARMS
from prunebench.measure.latency import NOISY_IQR
from prunebench.report.stats import Comparison, Summary, paired_p, summarize, welch
from prunebench.report.verdict import DEFAULT_MARGIN, ArmVerdict, judge

ARM_LABELS = {
    "unpruned": "Unpruned",
    "unpruned_plain": "Unpruned, plain training (no sparsity/soft/gate training)",
    "pruned_no_ft": "Pruned, no fine-tune",
    "pruned_no_ft_bnrecal": "Pruned, no fine-tune, BN recalibrated",
    "finetuned": "Fine-tuned",
    "finetune_long": "Fine-tuned long (Scratch-E epochs)",
    "lr_rewind": "LR rewinding",
    "weight_rewind": "Weight rewinding",
    "random_layerwise": "Random selection at the layer-wise amounts",
    "scratch_e": "Scratch-E",
    "scratch_b": "Scratch-B",
    "uniform_scratch": "Uniform width, scratch",
    "winning_ticket": "Winning ticket",
    "random_ticket": "Random-init ticket",
    "uniform_sparse_scratch": "Uniform sparsity, scratch",
    "guided_scratch": "Guided widths, scratch",
    "guided_sparse_scratch": "Guided sparsity, scratch",
    "transferred_guided_scratch": "Transferred guided, scratch",
}
PAPER_ARMS = ("unpruned", "finetuned", "scratch_e", "scratch_b")
COMPARED = (  # tested against fine-tuned
    "scratch_e", "scratch_b", "uniform_scratch", "uniform_sparse_scratch", "guided_scratch",
    "guided_sparse_scratch", "transferred_guided_scratch",
    "finetune_long", "lr_rewind", "weight_rewind", "random_layerwise",  # report/verdict.py's baselines
)  # fmt: skip


def reference_arm(arm: str) -> tuple[str, str] | None:
    """The arm `arm` is tested against, and its label: scratch arms against fine-tuned,
    a random-init ticket against the winning ticket of the same learning rate."""
    base = arm_base(arm)
    if base in COMPARED:
        return "finetuned", "fine-tuned"
    if base == "random_ticket":
        return "winning_ticket" + arm[len(base):], "the winning ticket"
    return None


def arm_base(arm: str) -> str:
    """`winning_ticket_lr0.1` -> `winning_ticket`."""
    return next((a for a in sorted(ARMS, key=len, reverse=True) if arm.startswith(a)), arm)


def arm_label(arm: str) -> str:
    base = arm_base(arm)
    tail = arm[len(base):].lstrip("_")
    return ARM_LABELS.get(base, base) + (f" ({tail.replace('lr', 'LR ')})" if tail else "")


def arm_order(arm: str) -> tuple[int, str]:
    base = arm_base(arm)
    return (ARMS.index(base) if base in ARMS else len(ARMS), arm)


def _mean(values: list[Any]) -> float | None:
    xs = [float(v) for v in values if v is not None]
    return sum(xs) / len(xs) if xs else None


@dataclass
class ArmStats:
    arm: str
    rows: list[dict[str, Any]]
    acc: Summary
    compat: Summary | None  # best-on-test over epochs (reference-compatible, optimistic)
    vs_reference: Comparison | None  # see `reference_arm`
    params: float | None
    flops: float | None
    flops_mode: str
    latency_ms: float | None
    epochs: float | None
    training_flops: float | None
    wall_s: float | None
    ratio: float | None  # FLOPs(unpruned) / FLOPs(this arm)


@dataclass
class MethodTable:
    experiment: str
    dataset: str
    model: str
    method: str
    primary: str  # what the accuracy column is
    arms: list[ArmStats]
    verdicts: list[ArmVerdict] = field(default_factory=list)  # arms vs fine-tuned (report/verdict.py)

    def arm(self, name: str) -> ArmStats | None:
        return next((a for a in self.arms if a.arm == name), None)


def build_tables(rows: list[dict[str, Any]], experiments: dict[str, dict[str, Any]]) -> list[MethodTable]:
    groups: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["primary_acc"] is not None:
            groups[(r["experiment"], r["method"])][r["arm"]].append(r)
    tables = []
    for (exp, method), arms in groups.items():
        preset = experiments[exp]["preset"]
        primary = "best-on-validation test accuracy" if preset["data"]["val_size"] else "final-epoch test accuracy"
        unpruned_flops = _mean([r["flops"] for r in arms.get("unpruned", [])])
        out = []
        for arm in sorted(arms, key=arm_order):
            rs = arms[arm]
            compat = [r["best_test_acc_compat"] for r in rs if r["best_test_acc_compat"] is not None]
            flops = _mean([r["flops"] for r in rs])
            out.append(ArmStats(
                arm=arm, rows=rs, acc=summarize([r["primary_acc"] for r in rs]),
                compat=summarize(compat) if compat else None,
                vs_reference=_compare(arm, arms),
                params=_mean([r["params_nonzero"] for r in rs]), flops=flops, flops_mode=rs[0]["flops_mode"] or "",
                latency_ms=_mean([r["latency_ms"] for r in rs]), epochs=_mean([r["epochs"] for r in rs]),
                training_flops=_mean([r["training_flops"] for r in rs]), wall_s=_mean([r["wall_s"] for r in rs]),
                ratio=_mean([r["flops_ratio"] for r in rs]) or (unpruned_flops / flops if unpruned_flops and flops else None),
            ))  # fmt: skip
        model = f"{preset['model']['variant']}" + (f" x{preset['model']['width_mult']:g}" if preset["model"]["width_mult"] != 1 else "")
        model = preset["model"].get("builder") or model  # a user model: its builder
        margin = (preset.get("compare") or {}).get("margin", DEFAULT_MARGIN)
        tables.append(MethodTable(exp, preset["data"]["name"], model, method, primary, out, _verdicts(arms, margin)))
    return tables


def _verdicts(arms: dict[str, list[dict[str, Any]]], margin: float) -> list[ArmVerdict]:
    """The arms tested against fine-tuned, judged together (one Holm family per method)."""
    if "finetuned" not in arms:
        return []
    acc = {a: {r["seed"]: r["primary_acc"] for r in arms[a]} for a in sorted(arms, key=arm_order)
           if (reference_arm(a) or ("",))[0] == "finetuned"}  # fmt: skip
    return judge(acc, {r["seed"]: r["primary_acc"] for r in arms["finetuned"]}, {a: arm_label(a) for a in acc}, margin)


def _compare(arm: str, arms: dict[str, list[dict[str, Any]]]) -> Comparison | None:
    ref = reference_arm(arm)
    if ref is None or ref[0] not in arms:
        return None
    ours, theirs = arms[arm], arms[ref[0]]
    result = welch([r["primary_acc"] for r in ours], [r["primary_acc"] for r in theirs], label=ref[1])
    p = paired_p({r["seed"]: r["primary_acc"] for r in ours}, {r["seed"]: r["primary_acc"] for r in theirs})
    return result if p is None else Comparison(result.p, f"{result.verdict}; seed-paired p = {p:.3g}")


def seed_coverage(tables: list[MethodTable], planned: list[int]) -> str:
    """Which seeds the numbers of `tables` come from, said against the seeds the last run planned:
    finished seeds of an earlier run with more seeds are used too (and named), never dropped."""
    finished = sorted({r["seed"] for t in tables for a in t.arms for r in a.rows})
    extra = [s for s in finished if s not in planned]
    pending = [s for s in planned if s not in finished]
    text = f"Seeds in these numbers: {', '.join(map(str, finished)) or 'none'}"
    if extra:
        text += (
            f" (the last run planned {', '.join(map(str, planned))}; "
            f"{', '.join(map(str, extra))} finished in an earlier run and are included)"
        )
    if pending:
        text += f"; planned, no finished result yet: {', '.join(map(str, pending))}"
    return text + "; n in each cell counts that arm's finished runs"


# -- formatting ---------------------------------------------------------------------------


def pct(s: Summary | None) -> str:
    if s is None:
        return "–"
    std = f" ± {100 * s.std:.2f}" if s.std is not None else ""
    return f"{100 * s.mean:.2f}{std} (n={s.n})"


def ci(s: Summary) -> str:
    return f"[{100 * s.ci[0]:.2f}, {100 * s.ci[1]:.2f}]" if s.ci else "n/a (n < 2)"


def num(v: float | None, unit: str = "") -> str:
    if v is None:
        return "–"
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.2f}{suffix}{unit}"
    return f"{v:.3g}{unit}"


def markdown_table(t: MethodTable) -> str:
    head = (
        "| Arm | Accuracy % mean ± std (n) | 95% CI | Welch t-test vs fine-tuned (scratch) / winning ticket (random init) | Params (non-zero) | FLOPs | "
        "FLOPs ratio | Latency ms, median ± IQR | Epochs | Training FLOPs | Wall s | Best-on-test % (reference-compatible, optimistic) |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for a in t.arms:
        vs = a.vs_reference.verdict if a.vs_reference else ""
        lines.append(
            f"| {arm_label(a.arm)} | {pct(a.acc)} | {ci(a.acc)} | {vs} | {num(a.params)} | {num(a.flops)} {a.flops_mode.split(' ')[0]} | "
            f"{f'{a.ratio:.2f}x' if a.ratio else '–'} | {latency_cell(a)} | "
            f"{f'{a.epochs:.3g}' if a.epochs is not None else '–'} | {num(a.training_flops)} | "
            f"{f'{a.wall_s:.1f}' if a.wall_s is not None else '–'} | {pct(a.compat)} |"
        )
    modes = sorted({a.flops_mode for a in t.arms if a.flops_mode})
    if modes:
        lines += ["", "FLOPs per image: " + "; ".join(modes) + "."]
    lines += latency_notes(t)
    if rules := flops_rule_note(t):
        lines += ["", rules]
    return "\n".join(lines)


#: What a Scratch-B budget's FLOPs rule counted (`BudgetPolicy.flops_rule`).
FLOPS_RULE_TEXT = {
    "pruned": "FLOPs of the pruned model as deployed",
    "soft_zeroed": "FLOPs of the soft-zeroed full model, the SFP reference's count",
}


def flops_rules(a: ArmStats) -> dict[str, list[int]]:
    """The FLOPs rule each run of a budgeted arm (Scratch-B) was given its epochs by, with the seeds
    that used it: from the budget's `policy` JSON; `not recorded` for runs stored before it was."""
    out: dict[str, list[int]] = {}
    for r in a.rows:
        policy = r.get("policy")
        policy = json.loads(policy) if isinstance(policy, str) else policy
        if not isinstance(policy, dict):
            continue
        out.setdefault(str(policy.get("flops_rule") or "not recorded"), []).append(r["seed"])
    return out


def flops_rule_note(t: MethodTable) -> str:
    """`Scratch-B FLOPs rule: pruned (...)` for the table's Scratch-B arms; seeds named when runs differ."""
    parts = []
    for a in t.arms:
        if arm_base(a.arm) != "scratch_b" or not (rules := flops_rules(a)):
            continue
        said = [f"`{rule}` ({FLOPS_RULE_TEXT.get(rule, 'the rule of an older run')}"
                + (f"; seeds {', '.join(map(str, sorted(seeds)))})" if len(rules) > 1 else ")") for rule, seeds in sorted(rules.items())]  # fmt: skip
        parts.append(f"{arm_label(a.arm)} FLOPs rule: " + "; ".join(said))
    return ". ".join(parts) + ("." if parts else "")


def _latencies(a: ArmStats) -> list[dict[str, Any]]:
    return [lat for r in a.rows if isinstance(lat := (r.get("arch") or {}).get("latency"), dict)]


def latency_cell(a: ArmStats) -> str:
    """Median ± IQR over the arm's runs (median of medians, mean IQR); `†` = a masked model timed
    dense; `noisy` when any run's spread was too wide to trust."""
    lats = _latencies(a)
    if not lats:
        return f"{a.latency_ms:.3f}" if a.latency_ms else "–"
    median = statistics.median(x["median_ms"] for x in lats)
    iqr = sum(x["iqr_ms"] for x in lats) / len(lats)
    flags = (" †" if any(x.get("dense") for x in lats) else "") + (" noisy" if any(x["noisy"] for x in lats) else "")
    return f"{median:.3f} ± {iqr:.3f}{flags}"


def latency_notes(t: MethodTable) -> list[str]:
    lats = [x for a in t.arms for x in _latencies(a)]
    if not lats:
        return []
    notes = [f"Latency: forward time of one batch of {lats[0]['batch_size']} on the CPU "
             f"({lats[0]['threads']} thread(s)), median ± interquartile range of torch.utils.benchmark blocks, "
             "measured when the stage finished."]  # fmt: skip
    if any(x.get("dense") for x in lats):
        notes.append("† Masked model, timed as the dense network it runs as: unstructured sparsity is not "
                     "accelerated here, so its latency shows no speed-up and none should be read into it.")  # fmt: skip
    if any(x["noisy"] for x in lats):
        notes.append(f"noisy: the spread stayed above {NOISY_IQR:.0%} of the median (a loaded machine); "
                     "do not compare those latencies.")  # fmt: skip
    return ["", " ".join(notes)]


def paper_table(tables: list[MethodTable]) -> str:
    """The paper's layout: one row per method, Unpruned | Fine-tuned | Scratch-E | Scratch-B."""
    lines = ["| Data set | Model | Method | " + " | ".join(ARM_LABELS[a] for a in PAPER_ARMS) + " |"]
    lines.append("|" + "---|" * (3 + len(PAPER_ARMS)))
    for t in tables:
        cells = [pct(a.acc) if (a := t.arm(arm)) else "–" for arm in PAPER_ARMS]
        lines.append(f"| {t.dataset} | {t.model} | {t.method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _tex(s: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#")):
        s = s.replace(a, b)
    return s


def latex_table(tables: list[MethodTable]) -> str:
    """The paper-layout table as a LaTeX tabular (booktabs)."""
    def cell(s: Summary | None) -> str:
        if s is None:
            return "--"
        return f"{100 * s.mean:.2f}" + (f" ($\\pm${100 * s.std:.2f})" if s.std is not None else "")

    lines = [
        "\\begin{tabular}{lll" + "r" * len(PAPER_ARMS) + "}",
        "\\toprule",
        "Data set & Model & Method & " + " & ".join(ARM_LABELS[a] for a in PAPER_ARMS) + " \\\\",
        "\\midrule",
    ]
    for t in tables:
        cells = [cell(a.acc) if (a := t.arm(arm)) else "--" for arm in PAPER_ARMS]
        lines.append(f"{_tex(t.dataset)} & {_tex(t.model)} & {_tex(t.method)} & " + " & ".join(cells) + " \\\\")
    lines.append("\\bottomrule")
    width = 3 + len(PAPER_ARMS)
    for t in tables:  # which FLOPs rule gave each method's Scratch-B its epochs
        arm = t.arm("scratch_b")
        if rules := flops_rules(arm) if arm else {}:
            said = ", ".join(f"{r} (seeds {', '.join(map(str, sorted(s)))})" for r, s in sorted(rules.items()))
            lines.append(f"\\multicolumn{{{width}}}{{l}}{{\\footnotesize {_tex(t.method)}: Scratch-B FLOPs rule {_tex(said)}}} \\\\")
    lines.append("\\end{tabular}")
    return "\n".join(lines)
