"""Trade-off plots that cannot mislead: the series behind them, and the PNGs they become."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
from reportkit import METHODS, SEEDS, fill

from prunebench.report.plots import ERROR_BAR, LEGEND, Point, Series, method_family, overlapping, tradeoff_series
from prunebench.report.writer import _load


def _tables(tmp_path: Path) -> list:
    fill(tmp_path)
    return _load(tmp_path)[1]


def test_one_series_per_method_and_arm_joining_only_its_amounts(tmp_path: Path) -> None:
    series = tradeoff_series(_tables(tmp_path), "params", [{"label": label, "name": name} for label, name, _, _ in METHODS])
    keys = [(s.method, s.arm) for s in series]
    assert len(keys) == len(set(keys)) == 2 * 4  # two methods x four arms, no series shared between methods
    by_key = {(s.method, s.arm): s for s in series}
    ft = by_key[("l1norm", "finetuned")]
    assert [(p.x, p.label) for p in ft.points] == [(400.0, "l1norm-60%"), (700.0, "l1norm-30%")]  # sorted by x
    assert {p.label for p in by_key[("slimming", "finetuned")].points} == {"slimming-50%"}
    assert all(p.label.startswith(s.method) for s in series for p in s.points)  # never joins another method
    # mean and bar = the arm's mean and sample std over the seeds, in %
    p = ft.points[0]
    assert p.n == len(SEEDS) and abs(p.mean - 86.0) < 1e-9 and abs(p.err - 0.4) < 1e-9
    # the shared unpruned model appears once per method amount at the same x: same series
    assert {q.x for q in by_key[("l1norm", "unpruned")].points} == {1000.0}


def test_family_falls_back_to_the_label_prefix() -> None:
    assert method_family("l1norm-50%") == "l1norm"
    assert method_family("l1@0.5") == "l1"  # an `amounts = [...]` label
    assert method_family("mine", {"mine": "slimming"}) == "slimming"


def test_overlap_detection() -> None:
    a = Series("l1norm", "finetuned", (Point(100.0, 90.0, 0.5, 3, "l1norm-50%"),))
    near = Series("slimming", "finetuned", (Point(102.0, 90.3, 0.5, 3, "slimming-50%"),))
    far_y = Series("slimming", "finetuned", (Point(102.0, 80.0, 0.5, 3, "slimming-50%"),))
    far_x = Series("slimming", "finetuned", (Point(300.0, 90.0, 0.5, 3, "slimming-50%"),))
    same_method = Series("l1norm", "scratch_e", (Point(100.0, 90.0, 0.5, 3, "l1norm-50%"),))
    assert overlapping([a, near])
    assert not overlapping([a, far_y]) and not overlapping([a, far_x]) and not overlapping([a, same_method])


def test_report_writes_panels_when_series_overlap_and_every_png_is_an_image(tmp_path: Path) -> None:
    from prunebench.report import write_report

    fill(tmp_path)
    report = write_report(tmp_path).read_text()
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    # the unpruned points of both methods coincide (1000 params, overlapping bars): panels too
    assert "hand-accuracy-vs-params-by-method.png" in pngs and "hand-accuracy-vs-flops-by-method.png" in pngs
    for name in pngs:
        assert f"({name})" in report
        img = matplotlib.image.imread(tmp_path / name)
        assert img.shape[0] > 200 and img.shape[1] > 300 and img.std() > 0.01  # not blank


def test_error_bar_meaning_is_stated() -> None:
    assert "sample std" in ERROR_BAR and "n = 1" in ERROR_BAR
    assert ERROR_BAR in LEGEND and "95% t CI" in LEGEND  # the legend says what bars and bands are

