"""Statistics of raw samples, computed at render time (the measurement file keeps only samples).

Process start times are skewed and outlier-prone, so everything here is distribution-free:
- the median's interval comes from order statistics, and its coverage is the exact binomial
  probability that it holds the true median: 95 % where the run count allows, the real (lower)
  figure where it does not;
- samples of two runtimes taken in the same interleaved rounds pair by round: a sign test on the
  per-round ratios decides, and the interval of the median ratio is the same order-statistic
  interval, so the verdict and the interval come from one procedure;
- samples that do not pair (different files, hosts or run counts) are compared with Mann-Whitney U,
  the ratio being the Hodges-Lehmann estimate on the log scale.

A difference is called only when the test rejects at 5 % and the ratio is at least MIN_EFFECT
away from 1 (as pyperf's --min-speed); otherwise the verdict is "no difference shown", with the
reason. p-values come from scipy.stats; intervals are exact order statistics found in
O(n log n), so any run count renders quickly.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
ALPHA = 1 - CONFIDENCE
MIN_EFFECT = 0.05  # a ratio within 5 % of 1 is not called a difference
FEW_RUNS = 10
HIGH_SPREAD = 0.10  # interquartile range over median
SLOW_FIRST_FACTOR = 1.5  # first counted run over the median of the rest
_EXACT_PAIRS_LIMIT = 4_000_000  # above this many pairwise differences, select by bisection


def _percent(fraction: float, digits: int = 0) -> str:
    return f"{fraction * 100:.{digits}f} %"


@dataclass(frozen=True)
class Interval:
    """low..high, and the real probability that an interval made this way holds the value."""

    # What a template may call (report/sandbox.py allows nothing else).
    TEMPLATE_CALLS: ClassVar[frozenset[str]] = frozenset({"coverage_text"})

    low: float
    high: float
    coverage: float
    approximate: bool = False  # coverage from a normal approximation, not exact

    @property
    def nominal(self) -> bool:
        """Does it reach the confidence asked for (CONFIDENCE)?"""
        return self.coverage >= CONFIDENCE - 1e-12

    def coverage_text(self) -> str:
        if self.coverage <= 0:
            return "no interval from one run"
        text = ("≈" if self.approximate else "") + _percent(self.coverage, digits=1)
        return text if self.nominal else f"{text} only: too few runs for {_percent(CONFIDENCE)}"


def median_rank(count: int, confidence: float = CONFIDENCE) -> tuple[int, float]:
    """0-based rank lo and coverage of [x(lo), x(count-1-lo)] as an interval of the median.

    It misses when at most lo of the values fall below the median, or above: coverage is
    1 - 2 P(Bin(count, 1/2) <= lo). lo is the largest rank that keeps the coverage at or above
    confidence; where even min..max falls short (fewer than 6 values at 95 %), lo is 0 and the
    coverage is what min..max really gives.
    """
    if count < 1:
        raise ValueError("no values")
    tail = (1 - confidence) / 2
    lo = int(scipy_stats.binom.ppf(tail, count, 0.5))
    while lo >= 0 and scipy_stats.binom.cdf(lo, count, 0.5) > tail:
        lo -= 1
    lo = max(lo, 0)
    coverage = 1 - 2 * float(scipy_stats.binom.cdf(lo, count, 0.5))
    return lo, max(coverage, 0.0)


def median_interval(ordered: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """The order-statistic interval of the median of sorted values."""
    lo, coverage = median_rank(int(ordered.size), confidence)
    return Interval(float(ordered[lo]), float(ordered[ordered.size - 1 - lo]), coverage)


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
    mad: float  # median absolute deviation from the median
    interval: Interval  # of the median
    outliers: int  # outside 1.5 IQR of the quartiles

    @property
    def ci_low(self) -> float:
        return self.interval.low

    @property
    def ci_high(self) -> float:
        return self.interval.high

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def relative_spread(self) -> float:
        """Interquartile range over the median: robust, like the median it goes with."""
        return self.iqr / self.median if self.median else 0.0


def summarize(values: Sequence[float]) -> Summary:
    if len(values) == 0:
        raise ValueError("no values to summarize")
    ordered = np.sort(np.asarray(values, dtype=float))
    n = int(ordered.size)
    q1, median, q3 = (float(q) for q in np.quantile(ordered, [0.25, 0.5, 0.75]))
    iqr = q3 - q1
    low_fence, high_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    return Summary(
        count=n,
        median=median,
        mean=float(ordered.mean()),
        stdev=float(ordered.std(ddof=1)) if n >= 2 else 0.0,
        minimum=float(ordered[0]),
        maximum=float(ordered[-1]),
        q1=q1,
        q3=q3,
        mad=float(np.median(np.abs(ordered - median))),
        interval=median_interval(ordered),
        outliers=int(np.count_nonzero((ordered < low_fence) | (ordered > high_fence))),
    )


# -- warnings: typed, each with what to do -----------------------------------------------------


class WarningKind(enum.StrEnum):
    FAILED_RUNS = "failed runs"
    FEW_RUNS = "few runs"
    LARGE_SPREAD = "large spread"
    SLOW_FIRST_RUN = "slow first run"


@dataclass(frozen=True)
class SampleWarning:
    kind: WarningKind
    message: str
    remedy: str

    def __str__(self) -> str:
        return f"{self.message}; {self.remedy}"


def warnings(
    summary: Summary | None,
    failed: int,
    measured: int,
    first_ms: float | None = None,
    declared_runs: bool = False,
) -> list[SampleWarning]:
    """What makes one runtime's samples weak, and what would make them stronger.

    first_ms is the first counted (not warm-up) run, when it passed its check; declared_runs:
    the lab config gave this runtime fewer runs on purpose (measure.runs_by_runtime).
    """
    found = []
    if failed:
        found.append(
            SampleWarning(
                WarningKind.FAILED_RUNS,
                f"{failed} of {measured} runs failed the output check and are left out",
                "read the failures below and fix the runtime before trusting its figures",
            )
        )
    if summary is None:
        return found
    if summary.count < FEW_RUNS:
        found.append(
            SampleWarning(
                WarningKind.FEW_RUNS,
                f"only {summary.count} valid runs (fewer than {FEW_RUNS})",
                "raise its count in the lab config's measure.runs_by_runtime where more than "
                "its verdict matters"
                if declared_runs
                else "measure again with more runs (labreport measure --runs 30)",
            )
        )
    if summary.relative_spread > HIGH_SPREAD:
        found.append(
            SampleWarning(
                WarningKind.LARGE_SPREAD,
                f"the interquartile range is {_percent(summary.relative_spread)} of the median "
                f"(over {_percent(HIGH_SPREAD)})",
                "measure on a quieter machine (nothing else running) or with more runs",
            )
        )
    slow_first = first_ms is not None and first_ms > SLOW_FIRST_FACTOR * summary.median
    if first_ms is not None and slow_first and summary.count >= 3:
        found.append(
            SampleWarning(
                WarningKind.SLOW_FIRST_RUN,
                f"the first counted run took {first_ms:.1f} ms, "
                f"{first_ms / summary.median:.1f}x the median: caches were still cold",
                "measure again with more warm-up runs (labreport measure --warmup 5)",
            )
        )
    return found


# -- comparisons --------------------------------------------------------------------------------


class Verdict(enum.StrEnum):
    FASTER = "faster"
    SLOWER = "slower"
    NO_DIFFERENCE = "no difference shown"


@dataclass(frozen=True)
class Comparison:
    """a against b: the ratio a / b with its interval, the test that decided, the verdict on a."""

    ratio: float
    interval: Interval
    verdict: Verdict
    reason: str  # why no difference was shown ("" for faster / slower)
    test: str  # which test, on how many samples, in words
    p_value: float

    @property
    def significant(self) -> bool:
        return self.verdict is not Verdict.NO_DIFFERENCE

    @property
    def percent(self) -> float:
        """How much larger (positive) or smaller (negative) a is than b, in percent."""
        return (self.ratio - 1) * 100

    @property
    def factor(self) -> float:
        """How many times the larger is than the smaller (>= 1)."""
        return self.ratio if self.ratio >= 1 else 1 / self.ratio


def min_pairs_to_reject(alpha: float = ALPHA) -> int:
    """Fewest paired rounds at which a two-sided sign test can reject at all (6 at 5 %)."""
    return math.ceil(math.log2(2 / alpha) - 1e-12)


def mann_whitney_can_reject(count_a: int, count_b: int, alpha: float = ALPHA) -> bool:
    """Whether the smallest two-sided exact p-value, 2 / C(n + m, n), is below alpha."""
    if min(count_a, count_b) >= 20:
        return True
    return 2 / math.comb(count_a + count_b, count_a) < alpha


def _decide(
    ratio: float, p_value: float, can_reject: bool, too_few: str, min_effect: float
) -> tuple[Verdict, str]:
    if not can_reject:
        return Verdict.NO_DIFFERENCE, too_few
    if p_value >= ALPHA:
        return Verdict.NO_DIFFERENCE, (
            f"the test did not reject (p = {p_value:.2g}): too much spread for this many runs"
        )
    if abs(math.log(ratio)) < math.log1p(min_effect):
        return Verdict.NO_DIFFERENCE, (
            f"under the minimum effect: {(ratio - 1) * 100:+.1f} % is within "
            f"±{_percent(min_effect)} (p = {p_value:.2g})"
        )
    return (Verdict.FASTER if ratio < 1 else Verdict.SLOWER), ""


def paired(
    a: Mapping[int, float], b: Mapping[int, float], min_effect: float = MIN_EFFECT
) -> Comparison:
    """a against b where both ran in the same rounds: a sign test on the per-round ratios.

    Only rounds in which both have a valid sample count. The ratio is the median of the
    per-round ratios a / b, its interval the order-statistic interval of that median.
    """
    rounds = sorted(set(a) & set(b))
    if not rounds:
        raise ValueError("no round in which both have a valid sample")
    ratios = np.sort(np.array([a[r] / b[r] for r in rounds], dtype=float))
    above = int(np.count_nonzero(ratios > 1))
    below = int(np.count_nonzero(ratios < 1))
    untied = above + below
    p_value = float(scipy_stats.binomtest(above, untied, 0.5).pvalue) if untied else 1.0
    ratio = float(np.median(ratios))
    needed = min_pairs_to_reject()
    verdict, reason = _decide(
        ratio,
        p_value,
        untied >= needed,
        f"too few runs: {untied} paired rounds that differ, and a sign test cannot reject "
        f"below {needed}",
        min_effect,
    )
    return Comparison(
        ratio=ratio,
        interval=median_interval(ratios),
        verdict=verdict,
        reason=reason,
        test=f"sign test, {len(rounds)} paired rounds ({above} slower, {below} faster)",
        p_value=p_value,
    )


def _count_at_most(x: np.ndarray, y: np.ndarray, t: float) -> int:
    """How many pairwise differences x_i - y_j are <= t (x, y sorted ascending)."""
    return int((y.size - np.searchsorted(y, x - t, side="left")).sum())


def kth_difference(x: np.ndarray, y: np.ndarray, k: int) -> float:
    """The k-th smallest (0-based) of the n * m differences x_i - y_j; x and y sorted.

    Small inputs take all differences; large ones bisect on the value, counting with a binary
    search per element, so memory stays O(n + m) and time O((n + m) log(n + m)) per step.
    """
    if x.size * y.size <= _EXACT_PAIRS_LIMIT:
        differences = np.subtract.outer(x, y).ravel()
        return float(np.partition(differences, k)[k])
    lo, hi = float(x[0] - y[-1]), float(x[-1] - y[0])
    if _count_at_most(x, y, lo) >= k + 1:
        return lo
    while True:
        middle = (lo + hi) / 2
        if not lo < middle < hi:
            return hi
        if _count_at_most(x, y, middle) >= k + 1:
            hi = middle
        else:
            lo = middle


def unpaired(a: Sequence[float], b: Sequence[float], min_effect: float = MIN_EFFECT) -> Comparison:
    """a against b where samples do not pair: Mann-Whitney U, Hodges-Lehmann ratio.

    On the log scale the shift between the two is the median of all differences
    log a_i - log b_j; its interval takes the differences at the ranks that the U statistic's
    null distribution gives (normal approximation, or min..max where the counts are too small).
    """
    if len(a) == 0 or len(b) == 0:
        raise ValueError("both sides need samples")
    x = np.sort(np.log(np.asarray(a, dtype=float)))
    y = np.sort(np.log(np.asarray(b, dtype=float)))
    n, m = int(x.size), int(y.size)
    total = n * m
    p_value = float(scipy_stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    if total % 2:
        shift = kth_difference(x, y, total // 2)
    else:
        shift = (kth_difference(x, y, total // 2 - 1) + kth_difference(x, y, total // 2)) / 2
    z = float(scipy_stats.norm.ppf(1 - ALPHA / 2))
    rank = math.floor(total / 2 - z * math.sqrt(total * (n + m + 1) / 12))
    if rank >= 0:
        coverage, approximate = CONFIDENCE, True
    else:  # min..max of the differences: exactly 1 - 2 / C(n + m, n) without ties
        rank, coverage, approximate = 0, 1 - 2 / math.comb(n + m, n), False
    interval = Interval(
        math.exp(kth_difference(x, y, rank)),
        math.exp(kth_difference(x, y, total - 1 - rank)),
        max(coverage, 0.0),
        approximate,
    )
    ratio = math.exp(shift)
    verdict, reason = _decide(
        ratio,
        p_value,
        mann_whitney_can_reject(n, m),
        f"too few runs: {n} against {m}, and Mann-Whitney U cannot reject with so few",
        min_effect,
    )
    return Comparison(
        ratio=ratio,
        interval=interval,
        verdict=verdict,
        reason=reason,
        test=f"Mann-Whitney U, {n} against {m} runs (unpaired)",
        p_value=p_value,
    )
