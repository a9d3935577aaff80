"""Report statistics on hand-made numbers, checked against scipy."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from prunebench.report import summarize, welch
from prunebench.report.stats import TOO_FEW, paired_p


def test_mean_sample_std_and_t_interval() -> None:
    s = summarize([0.90, 0.92, 0.94])
    assert s.mean == pytest.approx(0.92) and s.n == 3
    assert s.std == pytest.approx(0.02)  # sample std (n - 1), not population
    half = stats.t.ppf(0.975, 2) * 0.02 / math.sqrt(3)
    assert s.ci == pytest.approx((0.92 - half, 0.92 + half))


def test_single_run_has_no_spread() -> None:
    s = summarize([0.5])
    assert (s.std, s.ci) == (None, None)


def test_welch_matches_scipy_and_says_which_way() -> None:
    a, b = [0.91, 0.92, 0.93, 0.925], [0.80, 0.82, 0.79, 0.81]
    c = welch(a, b)
    assert c.p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert c.p < 0.05 and c.verdict.startswith("higher than fine-tuned")


def test_welch_not_significant_or_too_few() -> None:
    assert welch([0.5, 0.6], [0.55, 0.56]).verdict.startswith("no significant difference")
    assert welch([0.5], [0.4, 0.6]).verdict == TOO_FEW and welch([0.5], [0.4, 0.6]).p is None


def test_paired_test_uses_shared_seeds_only() -> None:
    a, b = {0: 0.90, 1: 0.92, 2: 0.95, 7: 0.1}, {0: 0.88, 1: 0.91, 2: 0.92, 9: 0.5}
    assert paired_p(a, b) == pytest.approx(stats.ttest_rel([0.90, 0.92, 0.95], [0.88, 0.91, 0.92]).pvalue)
    assert paired_p({0: 0.9}, {0: 0.8}) is None
