"""Seed-paired differences, TOST, Holm and the verdicts, on constructed data with known answers."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from prunebench.report.stats import (
    bootstrap_ci, holm, paired_difference, paired_differences, resolvable_margin, seeds_needed, tost_p,
)  # fmt: skip
from prunebench.report.verdict import judge

SEEDS = range(8)
REF = {s: 0.80 + 0.01 * ((s * 7) % 5) for s in SEEDS}  # the fine-tuned accuracies, spread over seeds


def _shifted(points: list[float]) -> dict[int, float]:
    """The reference plus a per-seed difference given in accuracy points."""
    return {s: REF[s] + p / 100 for s, p in zip(SEEDS, points)}


def test_holm_against_a_hand_computation() -> None:
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max(0.06, 0.04) = 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.01, None, 0.04]) == [pytest.approx(0.02), None, pytest.approx(0.04)]
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1


def test_paired_difference_and_tost_match_scipy() -> None:
    d = [0.1, -0.2, 0.15, 0.05, 0.0, -0.1]
    diff = paired_difference(d)
    assert diff.mean == pytest.approx(sum(d) / 6) and diff.p == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    half = stats.t.ppf(0.975, 5) * stats.tstd(d) / math.sqrt(6)
    assert diff.ci == pytest.approx((diff.mean - half, diff.mean + half))
    lower = stats.ttest_1samp(d, -0.5, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, 0.5, alternative="less").pvalue
    assert tost_p(diff, 0.5) == pytest.approx(max(lower, upper))
    assert tost_p(diff, 0.5) < 0.05 < tost_p(diff, 0.1)  # equivalent within ±0.5, not within ±0.1


def test_bootstrap_is_seeded_and_agrees_with_the_t_interval() -> None:
    d = [0.3, -0.1, 0.4, 0.2, 0.0, 0.5, 0.1, 0.2, -0.2, 0.3]
    assert bootstrap_ci(d, seed=3, resamples=50) == bootstrap_ci(d, seed=3, resamples=50) != bootstrap_ci(d, seed=4, resamples=50)
    t_ci, boot = paired_difference(d).ci, bootstrap_ci(d)
    assert t_ci is not None and boot[0] < sum(d) / 10 < boot[1]
    assert abs(boot[0] - t_ci[0]) < 0.1 and abs(boot[1] - t_ci[1]) < 0.1


def test_paired_differences_use_shared_seeds_in_order() -> None:
    assert paired_differences({2: 0.5, 0: 0.7, 5: 0.1}, {0: 0.6, 2: 0.4, 9: 0.0}) == pytest.approx([0.1, 0.1])


def test_seed_count_rule_is_the_smallest_that_resolves_the_margin() -> None:
    m = seeds_needed(1.0, 0.5)
    assert m is not None and resolvable_margin(1.0, m) <= 0.5 < resolvable_margin(1.0, m - 1)
    # by hand: n = 3: (2.920 + 1.886) * 0.2 / sqrt(3) = 0.555 > 0.5; n = 4: (2.353 + 1.638) * 0.2 / 2 = 0.399
    assert seeds_needed(0.2, 0.5) == 4
    assert seeds_needed(1.0, 0.5) > seeds_needed(0.5, 0.5)


def test_verdicts_with_known_answers() -> None:
    arms = {
        "same": _shifted([0.05, -0.05, 0.02, -0.03, 0.04, -0.02, 0.01, -0.01]),
        "up": _shifted([3.0, 3.1, 2.9, 3.05, 2.95, 3.0, 3.1, 2.9]),
        "down": _shifted([-2.0, -2.1, -1.9, -2.05, -1.95, -2.0, -2.1, -1.9]),
        "noisy": {s: v for s, v in _shifted([1.5, -1.8, 0.9]).items() if s < 3},
    }
    got = {v.arm: v for v in judge(arms, REF, {"same": "Same"}, 0.5)}
    assert {a: v.kind for a, v in got.items()} == {"same": "equivalent", "up": "better", "down": "worse", "noisy": "inconclusive"}
    assert got["same"].text.startswith("equivalent within ±0.5") and got["same"].label == "Same"
    assert got["up"].diff.mean == pytest.approx(3.0, abs=0.01)  # accuracy points, not fractions
    noisy = got["noisy"]
    assert noisy.diff.n == 3 and noisy.diff.sd is not None
    x, m = resolvable_margin(noisy.diff.sd, 3), seeds_needed(noisy.diff.sd, 0.5)
    assert f"inconclusive: 3 seeds resolve ±{x:.2f} points, about {m} seeds would be needed for ±0.5" in noisy.text


def test_holm_correction_changes_a_marginal_verdict() -> None:
    marginal = {s: REF[s] + p / 100 for s, p in zip(SEEDS, [1.0, 2.0, 0.4, 1.5])}  # paired p = 0.037
    alone = judge({"a": marginal}, REF, {}, 0.5)[0]
    assert alone.kind == "better" and alone.p_diff_holm == pytest.approx(alone.diff.p)
    two = judge({"a": marginal, "b": dict(marginal)}, REF, {}, 0.5)
    assert [v.kind for v in two] == ["inconclusive", "inconclusive"]
    assert two[0].p_diff_holm == pytest.approx(2 * alone.diff.p)


def test_one_pair_is_too_few() -> None:
    (v,) = judge({"a": {0: 0.9}}, {0: 0.8}, {}, 0.5)
    assert v.kind == "inconclusive" and "at least 2" in v.text
