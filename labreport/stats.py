"""Statistics of raw samples, computed at render time (the measurement file keeps only samples).

The confidence interval of the median is distribution-free (binomial order statistics), so it
holds for the skewed, outlier-prone timings that process starts give. A difference is called
significant only when the two intervals do not overlap and the factor is meaningful.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

FEW_RUNS = 10
HIGH_CV = 0.10
MEANINGFUL_FACTOR = 1.05


@dataclass(frozen=True)
class Summary:
    """Of one set of values (milliseconds for timings, bytes for sizes)."""

    count: int
    median: float
    mean: float
    stdev: float
    minimum: float
    maximum: float
    q1: float
    q3: float
    ci_low: float
    ci_high: float
    outliers: int

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def cv(self) -> float:
        """Coefficient of variation (stdev / mean)."""
        return self.stdev / self.mean if self.mean else 0.0


def _binomial_cdf(k: int, n: int) -> float:
    return float(sum(math.comb(n, i) for i in range(k + 1))) / float(2**n)


def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based ranks (lo, hi) of the sorted values that bound the median with >= confidence.

    [x(lo), x(n-1-lo)] covers the median with probability 1 - 2 P(Bin(n, 1/2) <= lo); the
    narrowest such interval is taken. Below n = 6 even min..max falls short of 95 %: then
    min..max is given (and the report warns that runs are few).
    """
    best = (0, n - 1)
    for lo in range(1, (n + 1) // 2):
        if 1 - 2 * _binomial_cdf(lo, n) < confidence:
            break
        best = (lo, n - 1 - lo)
    return best


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        raise ValueError("no values to summarize")
    ordered = sorted(values)
    n = len(ordered)
    if n >= 2:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    else:
        q1 = q3 = ordered[0]
    iqr = q3 - q1
    low_fence, high_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    lo, hi = median_ci_ranks(n)
    return Summary(
        count=n,
        median=statistics.median(ordered),
        mean=statistics.fmean(ordered),
        stdev=statistics.stdev(ordered) if n >= 2 else 0.0,
        minimum=ordered[0],
        maximum=ordered[-1],
        q1=q1,
        q3=q3,
        ci_low=ordered[lo],
        ci_high=ordered[hi],
        outliers=sum(1 for v in ordered if v < low_fence or v > high_fence),
    )


def warnings(summary: Summary | None, failed: int, measured: int) -> list[str]:
    """What makes a set of samples weak, in words for the report."""
    found = []
    if failed:
        found.append(f"{failed} of {measured} runs failed the output check and are left out")
    if summary is None:
        return found
    if summary.count < FEW_RUNS:
        found.append(f"only {summary.count} valid runs (fewer than {FEW_RUNS})")
    if summary.cv > HIGH_CV:
        found.append(f"large spread: CV {summary.cv:.0%} (over {HIGH_CV:.0%})")
    return found


@dataclass(frozen=True)
class Comparison:
    """a against b, by their medians."""

    ratio: float  # a / b
    significant: bool

    @property
    def percent(self) -> float:
        """How much larger (positive) or smaller (negative) a is than b, in percent."""
        return (self.ratio - 1) * 100

    @property
    def factor(self) -> float:
        """How many times the larger is than the smaller (>= 1)."""
        return self.ratio if self.ratio >= 1 else 1 / self.ratio


def compare(a: Summary, b: Summary) -> Comparison:
    ratio = a.median / b.median
    apart = a.ci_low > b.ci_high or b.ci_low > a.ci_high
    meaningful = max(ratio, 1 / ratio) >= MEANINGFUL_FACTOR
    return Comparison(ratio=ratio, significant=apart and meaningful)
