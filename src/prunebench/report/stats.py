"""The statistics of a report: mean, sample std, t-based 95% CI, Welch's t-test,
and the seed-paired difference, equivalence (TOST) and Holm machinery of the verdicts.

Sample std uses n - 1 (docs/protocol.md §7.1 Runs and statistics).  The confidence interval is
mean ± t(0.975, n-1) · std / √n.  A scratch arm is compared with the
fine-tuned arm by Welch's unequal-variance t-test; with fewer than two runs in
either arm, or p ≥ `ALPHA`, the report says it cannot tell them apart.  Where the
arms share seeds, a seed-paired t-test is reported next to it.

"No significant difference" is not "the same": an equivalence claim needs the two
one-sided tests (TOST) against a margin ±δ, i.e. the 90% CI of the paired difference
inside (-δ, δ).  When neither a difference nor equivalence is shown, `seeds_needed`
says how many seeds would resolve ±δ (80% power if the arms are truly equal).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05
TOO_FEW = "n too small to tell"
POWER = 0.8  # of the seed-count rule
BOOTSTRAP_RESAMPLES = 10_000
MAX_SEEDS = 10_000  # the seed-count rule gives up beyond this


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float | None  # sample std; None when n < 2
    ci: tuple[float, float] | None  # 95% t interval; None when n < 2


def summarize(values: Sequence[float]) -> Summary:
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("no values to summarise")
    mean = sum(xs) / n
    if n < 2:
        return Summary(n, mean, None, None)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = _half_width(std, n, 0.975)
    return Summary(n, mean, std, (mean - half, mean + half))


@dataclass(frozen=True)
class Comparison:
    p: float | None
    verdict: str


def welch(arm: Sequence[float], reference: Sequence[float], *, label: str = "fine-tuned") -> Comparison:
    """Welch's t-test of `arm` against `reference`, with a one-phrase verdict."""
    if len(arm) < 2 or len(reference) < 2:
        return Comparison(None, TOO_FEW)
    with warnings.catch_warnings():  # near-identical runs: scipy warns, we report "no spread" below
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(list(arm), list(reference), equal_var=False).pvalue)
    ours, theirs = summarize(arm).mean, summarize(reference).mean
    direction = "higher" if ours > theirs else "lower"
    if math.isnan(p):  # both arms without spread: no test possible
        return Comparison(None, "identical runs" if ours == theirs else f"{direction}, but runs without spread")
    if p >= ALPHA:
        return Comparison(p, f"no significant difference (p = {p:.3g})")
    return Comparison(p, f"{direction} than {label} (p = {p:.3g})")


def paired_p(arm: dict[int, float], reference: dict[int, float]) -> float | None:
    """Paired t-test over the seeds both arms share (the i-th scratch run uses the i-th pruning
    run's architecture); None with fewer than two pairs or without spread in the differences."""
    seeds = sorted(set(arm) & set(reference))
    if len(seeds) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_rel([arm[s] for s in seeds], [reference[s] for s in seeds]).pvalue)
    return None if math.isnan(p) else p


# -- seed-paired differences, equivalence, multiple comparisons --------------------------


def paired_differences(arm: dict[int, float], reference: dict[int, float]) -> list[float]:
    """arm - reference over the seeds both share, in seed order (the pairing of docs/protocol.md §1 Arms)."""
    return [arm[s] - reference[s] for s in sorted(set(arm) & set(reference))]


@dataclass(frozen=True)
class PairedDifference:
    n: int  # pairs
    mean: float
    sd: float | None  # sample std of the differences; None when n < 2
    ci: tuple[float, float] | None  # 95% t interval of the mean difference
    boot_ci: tuple[float, float] | None  # 95% percentile bootstrap interval (a check on the t interval)
    p: float | None  # two-sided paired t-test of "no difference"


def _half_width(sd: float, n: int, q: float) -> float:
    return float(stats.t.ppf(q, n - 1)) * sd / math.sqrt(n)


def bootstrap_ci(values: Sequence[float], *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean; seeded, so a report is reproducible."""
    xs = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = xs[rng.integers(0, len(xs), size=(resamples, len(xs)))].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def paired_difference(diffs: Sequence[float], *, seed: int = 0) -> PairedDifference:
    """The mean seed-paired difference with its t and bootstrap 95% intervals and paired t-test."""
    if not diffs:
        raise ValueError("no paired differences")
    s = summarize(diffs)  # mean, sample sd and t interval of the differences
    n, mean, sd = s.n, s.mean, s.std
    if sd is None:
        return PairedDifference(n, mean, None, None, None, None)
    if sd == 0:  # every pair differs by the same amount: the test is decided by the sign alone
        p = 1.0 if mean == 0 else 0.0
    else:
        p = float(2 * stats.t.sf(abs(mean) / (sd / math.sqrt(n)), n - 1))
    return PairedDifference(n, mean, sd, s.ci, bootstrap_ci(diffs, seed=seed), p)


def tost_p(diff: PairedDifference, margin: float) -> float | None:
    """p-value of the two one-sided t-tests of equivalence within ±`margin` (the larger of
    the two: both "difference ≤ -margin" and "difference ≥ margin" must be rejected)."""
    if margin <= 0:
        raise ValueError(f"equivalence margin must be positive, got {margin}")
    if diff.sd is None:
        return None
    if diff.sd == 0:
        return 0.0 if abs(diff.mean) < margin else 1.0
    se = diff.sd / math.sqrt(diff.n)
    lower = float(stats.t.sf((diff.mean + margin) / se, diff.n - 1))  # H0: difference <= -margin
    upper = float(stats.t.cdf((diff.mean - margin) / se, diff.n - 1))  # H0: difference >= +margin
    return max(lower, upper)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None entries are not tests and stay None):
    the i-th smallest of m p-values becomes max over j <= i of min(1, (m - j + 1) p_(j))."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(tested)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def resolvable_margin(sd: float, n: int, *, alpha: float = ALPHA, power: float = POWER) -> float:
    """The equivalence margin n pairs with spread `sd` show with probability `power` when the
    arms are truly equal: (t(1-α, n-1) + t(1-(1-power)/2, n-1)) · sd / √n."""
    return (_half_width(sd, n, 1 - alpha) + _half_width(sd, n, 1 - (1 - power) / 2)) if n >= 2 else math.inf


def seeds_needed(sd: float, margin: float, *, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """The fewest paired seeds whose `resolvable_margin` is at most `margin`; None beyond `MAX_SEEDS`."""
    if sd == 0:
        return 2
    n = 2
    while resolvable_margin(sd, n, alpha=alpha, power=power) > margin:
        n = n + 1 if n < 100 else int(n * 1.05) + 1
        if n > MAX_SEEDS:
            return None
    return n
