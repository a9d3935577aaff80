"""The report from a hand-made store: table cells, Welch verdicts, LaTeX, plots, exports."""

from __future__ import annotations

from pathlib import Path

import pytest
from scipy import stats

from prunebench.errors import PrunebenchError
from prunebench.experiment import Store
from prunebench.experiment.graph import Stage
from prunebench.report import write_report

ACC = {
    "unpruned": [0.93, 0.94, 0.95], "finetuned": [0.90, 0.91, 0.92], "scratch_b": [0.95, 0.96, 0.97], "scratch_e": [0.91],
    "winning_ticket_lr0.1": [0.90, 0.91], "random_ticket_lr0.1": [0.80, 0.81],
}  # fmt: skip


def _fill(exp_dir: Path) -> None:
    store = Store.open(exp_dir)
    preset = {"seeds": [0, 1, 2], "data": {"name": "cifar10", "val_size": 0}, "model": {"variant": "vgg16", "width_mult": 1.0},
              "description": "hand-made", "notes": []}  # fmt: skip
    store.add_experiment("hand", "presets/hand.toml", preset)
    for arm, accs in ACC.items():
        for seed, acc in enumerate(accs):
            sid = f"{arm}{seed}".ljust(64, "0")
            store.add_stages("hand", [Stage(sid, arm.split("_lr")[0], seed, {}, {}, {}, ("l1",))], [("l1", arm, sid, arm)])
            widths = [64, "M", 128] if arm == "unpruned" else [32, "M", 64]
            store.add_result(sid, arm, seed, primary_acc=acc, final_test_acc=acc, params_nonzero=1000 if arm == "unpruned" else 400,
                             flops=2e6 if arm == "unpruned" else 1e6, flops_mode="reference counter v1 at 3x32x32", latency_ms=1.0,
                             best_test_acc_compat=acc + 0.01, arch={"widths": widths})  # fmt: skip
            store.set_budget(sid, epochs=160 if arm != "scratch_b" else 320, training_flops=1e12)
            store.mark_done(sid)
    store.close()


def test_report_tables_statistics_and_files(tmp_path: Path) -> None:
    _fill(tmp_path)
    report = write_report(tmp_path).read_text()
    assert "| cifar10 | vgg16 | l1 | 94.00 ± 1.00 (n=3) | 91.00 ± 1.00 (n=3) | 91.00 (n=1) | 96.00 ± 1.00 (n=3) |" in report
    p = stats.ttest_ind(ACC["scratch_b"], ACC["finetuned"], equal_var=False).pvalue
    assert f"higher than fine-tuned (p = {p:.3g})" in report
    assert "| Scratch-E | 91.00 (n=1) | n/a (n < 2) | n too small to tell |" in report
    assert "| Random-init ticket (LR 0.1) | 80.50 ± 0.71 (n=2) |" in report
    p_ticket = stats.ttest_ind(ACC["random_ticket_lr0.1"], ACC["winning_ticket_lr0.1"], equal_var=False).pvalue
    assert f"lower than the winning ticket (p = {p_ticket:.3g})" in report
    half = 100 * stats.t.ppf(0.975, 2) * 0.01 / 3**0.5
    assert f"[{91 - half:.2f}, {91 + half:.2f}]" in report
    assert "| 1.00M reference | 2.00x |" in report and "FLOPs per image: reference counter v1 at 3x32x32." in report
    assert "| 2.00x |" in report and "92.00 ± 1.00 (n=3)" in report  # FLOPs ratio; best-on-test column
    assert "91.00 ($\\pm$1.00)" in (tmp_path / "report.tex").read_text()
    assert {p.name for p in tmp_path.glob("*.png")} == {
        "hand-accuracy-vs-params.png", "hand-accuracy-vs-flops.png", "hand-l1-widths.png",
    }  # fmt: skip
    assert (tmp_path / "results.csv").read_text().count("\n") == 1 + sum(len(v) for v in ACC.values())


def test_report_of_a_folder_without_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PrunebenchError, match="no prunebench.sqlite here"):
        write_report(tmp_path)


def _set_rules(exp_dir: Path, rules: list[str | None]) -> None:
    """Give the Scratch-B runs (seeds 0, 1, 2) budgets with these FLOPs rules (None: a policy from before the rule was stored)."""
    store = Store.open(exp_dir)
    for seed, rule in enumerate(rules):
        policy = {"kind": "paper", "capped": False, **({"flops_rule": rule} if rule else {})}
        store.set_budget(f"scratch_b{seed}".ljust(64, "0"), epochs=320, training_flops=1e12, policy=policy)
    store.close()


def test_report_names_the_scratch_b_flops_rule_in_markdown_latex_and_html(tmp_path: Path) -> None:
    _fill(tmp_path)
    _set_rules(tmp_path, ["soft_zeroed"] * 3)
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "Scratch-B FLOPs rule: `soft_zeroed` (FLOPs of the soft-zeroed full model, the SFP reference's count)." in md
    assert "`pruned`" not in md and "seeds 0" not in md  # one rule for every run: no seed list
    tex = (tmp_path / "report.tex").read_text()
    assert r"\multicolumn{7}{l}{\footnotesize l1: Scratch-B FLOPs rule soft\_zeroed (seeds 0, 1, 2)} \\" in tex
    assert tex.index(r"\bottomrule") < tex.index("FLOPs rule") < tex.index(r"\end{tabular}")
    assert "Scratch-B FLOPs rule: <code>soft_zeroed</code>" in (tmp_path / "report.html").read_text()


def test_mixed_and_unrecorded_flops_rules_name_their_seeds(tmp_path: Path) -> None:
    _fill(tmp_path)
    _set_rules(tmp_path, ["pruned", None, "pruned"])
    write_report(tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert ("Scratch-B FLOPs rule: `not recorded` (the rule of an older run; seeds 1); "
            "`pruned` (FLOPs of the pruned model as deployed; seeds 0, 2).") in md  # fmt: skip
    assert "not recorded (seeds 1), pruned (seeds 0, 2)" in (tmp_path / "report.tex").read_text()


def test_no_budget_policy_no_rule_note(tmp_path: Path) -> None:
    _fill(tmp_path)  # budgets without a policy (no Scratch-B budget was derived)
    write_report(tmp_path)
    assert "FLOPs rule" not in (tmp_path / "report.md").read_text() + (tmp_path / "report.tex").read_text()
