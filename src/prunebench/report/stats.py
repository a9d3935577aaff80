"""The statistics of a report: mean, sample std, t-based 95% CI, Welch's t-test.

Sample std uses n - 1 (protocol §7.1).  The confidence interval is
mean ± t(0.975, n-1) · std / √n.  A scratch arm is compared with the
fine-tuned arm by Welch's unequal-variance t-test; with fewer than two runs in
either arm, or p ≥ `ALPHA`, the report says it cannot tell them apart.  Where the
arms share seeds, a seed-paired t-test is reported next to it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

ALPHA = 0.05
TOO_FEW = "n too small to tell"


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
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
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
