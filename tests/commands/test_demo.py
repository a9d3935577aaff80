"""`prunebench demo --quick` end to end: a report with every arm, CIs and plots; rerunning is a no-op."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prunebench.cli import main
from prunebench.experiment import load_preset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    return out


def test_report_has_every_arm_cis_and_plots(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = (demo_dir / "report.md").read_text()
    for label in ("Unpruned", "Pruned, no fine-tune", "Pruned, no fine-tune, BN recalibrated", "Fine-tuned", "Scratch-E", "Scratch-B"):
        assert f"| {label} | " in report
    assert "95% CI" in report and "Welch t-test vs fine-tuned" in report and "(n=3)" in report
    assert "## Provenance" in report and "reference-compatible, optimistic" in report
    pngs = {p.name for p in demo_dir.glob("*.png")}
    assert {"demo-quick-accuracy-vs-params.png", "demo-quick-accuracy-vs-flops.png"} <= pngs
    assert any(name.endswith("-widths.png") for name in pngs)
    assert "\\begin{tabular}" in (demo_dir / "report.tex").read_text()
    rows = json.loads((demo_dir / "results.json").read_text())
    preset = load_preset("demo-quick")
    arms = {(r["method"], r["arm"]) for r in rows}
    # the plain baseline exists only where large training is special (slimming), and is L1-norm's large model
    expected = {(m.label, a) for m in preset.methods for a in preset.arms if a != "unpruned_plain"}
    assert arms == expected | {("slimming-50%", "unpruned_plain")}
    plain = {r["stage_id"] for r in rows if r["arm"] == "unpruned_plain"}
    assert plain == {r["stage_id"] for r in rows if (r["method"], r["arm"]) == ("l1norm-50%", "unpruned")}
    assert all(0.0 <= r["primary_acc"] <= 1.0 for r in rows)
    scratch_b = [r for r in rows if r["arm"] == "scratch_b"]
    assert all(r["budget_ratio"] > 1 and r["epochs"] > preset.large.epochs for r in scratch_b)


def test_slimming_section_has_gamma_before_and_after(demo_dir: Path) -> None:
    report = (demo_dir / "report.md").read_text()
    section = report[report.index("### fashion-mnist / vgg11 x0.125 / slimming-50%"):]
    assert "| before (plain training) | 1032 |" in section and "| after sparsity training | 1032 |" in section
    assert "![demo-quick-slimming-50--gamma](demo-quick-slimming-50--gamma.png)" in section
    assert (demo_dir / "demo-quick-slimming-50--gamma.png").stat().st_size > 0
    l1 = report[report.index("### fashion-mnist / vgg11 x0.125 / l1norm-50%"):report.index("### fashion-mnist / vgg11 x0.125 / slimming-50%")]
    assert "BN scales" not in l1  # plain large training: nothing to show


def test_rerun_is_a_no_op(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (demo_dir / "results.csv").read_text()
    capsys.readouterr()
    assert main(["demo", "--quick", "--out", str(demo_dir)]) == 0
    out = capsys.readouterr().out
    assert "all 30 stages already done" in out and "| Scratch-B |" in out and "report.md" in out
    assert (demo_dir / "results.csv").read_text() == before
