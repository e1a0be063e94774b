"""The statistics behind every verdict, checked against scipy and by simulation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from labreport.analysis import stats
from labreport.analysis.stats import Verdict, WarningKind
from labreport.measure.plan import Plan
from labreport.report import render

SYNTHETIC = Path(__file__).resolve().parent / "fixtures" / "synthetic.json"
SIZES = [1, 2, 5, 6, 15, 1_024, 100_000]


# -- the median and its interval --------------------------------------------------------------


@pytest.mark.parametrize("count", SIZES)
def test_summary_at_every_size(count: int) -> None:
    values = np.random.default_rng(count).lognormal(mean=4, sigma=0.2, size=count)
    summary = stats.summarize(values.tolist())
    assert summary.count == count
    assert summary.median == pytest.approx(float(np.median(values)))
    assert summary.ci_low <= summary.median <= summary.ci_high
    assert summary.minimum <= summary.ci_low and summary.ci_high <= summary.maximum
    # The coverage is the exact binomial figure for the ranks that were taken.
    lo, coverage = stats.median_rank(count)
    assert summary.interval.coverage == pytest.approx(coverage)
    assert coverage == pytest.approx(1 - 2 * scipy_stats.binom.cdf(lo, count, 0.5))


@pytest.mark.parametrize(
    ("count", "coverage", "nominal"),
    [(1, 0.0, False), (2, 0.5, False), (5, 1 - 2 / 32, False), (6, 1 - 2 / 64, True)],
)
def test_too_few_runs_are_labelled_with_their_real_coverage(
    count: int, coverage: float, nominal: bool
) -> None:
    interval = stats.summarize([float(v) for v in range(1, count + 1)]).interval
    assert interval.coverage == pytest.approx(coverage)
    assert interval.nominal is nominal
    text = interval.coverage_text()
    if count == 1:
        assert text == "no interval from one run"
    elif nominal:
        assert text == "96.9 %"
    else:
        assert text == f"{coverage * 100:.1f} % only: too few runs for 95 %"


@pytest.mark.parametrize("count", [6, 7, 10, 15, 16, 50, 101, 1_024, 100_000])
def test_median_interval_is_scipys_quantile_test_interval(count: int) -> None:
    values = np.sort(np.random.default_rng(7).lognormal(size=count))
    reference = scipy_stats.quantile_test(values, q=float(np.median(values)), p=0.5)
    expected = reference.confidence_interval(confidence_level=0.95)
    mine = stats.median_interval(values)
    assert (mine.low, mine.high) == (expected.low, expected.high)
    assert mine.nominal


@pytest.mark.parametrize("count", [5, 15, 40])
def test_median_interval_coverage_holds_in_simulation(count: int) -> None:
    """Draw many samples from a skewed distribution with a known median; count the hits."""
    rng = np.random.default_rng(2024 + count)
    trials = 4_000
    true_median = 1.0  # lognormal(0, s) has median e^0
    draws = np.sort(rng.lognormal(0.0, 0.5, size=(trials, count)), axis=1)
    lo, coverage = stats.median_rank(count)
    hits = np.mean((draws[:, lo] <= true_median) & (true_median <= draws[:, count - 1 - lo]))
    # Four standard errors of a binomial proportion around the promised coverage.
    tolerance = 4 * math.sqrt(coverage * (1 - coverage) / trials)
    assert abs(hits - coverage) < tolerance


def test_ranks_quartiles_and_outliers_of_known_values() -> None:
    assert stats.median_rank(10)[0] == 1  # x(1)..x(8), 0-based
    assert stats.median_rank(15)[0] == 3
    assert stats.median_rank(5) == (0, pytest.approx(1 - 2 / 32))  # too few: min..max
    summary = stats.summarize([10.0, 11, 12, 13, 14, 15, 16, 17, 18, 100])
    assert (summary.median, summary.q1, summary.q3) == (14.5, 12.25, 16.75)
    assert summary.outliers == 1 and summary.mad == 2.5
    assert (summary.ci_low, summary.ci_high) == (11.0, 18.0)


def test_summary_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        stats.summarize([])


# -- the paired test --------------------------------------------------------------------------


def rounds(values: list[float]) -> dict[int, float]:
    return dict(enumerate(values))


def test_paired_slower_and_faster() -> None:
    base = [100.0 + (i % 5) for i in range(15)]
    slower = [v * 1.14 for v in base]
    result = stats.paired(rounds(slower), rounds(base))
    assert result.verdict is Verdict.SLOWER and result.significant
    assert result.ratio == pytest.approx(1.14)
    assert result.interval.low <= result.ratio <= result.interval.high
    # 15 of 15 rounds slower: the exact two-sided sign test.
    assert result.p_value == pytest.approx(2 * 0.5**15)
    reverse = stats.paired(rounds(base), rounds(slower))
    assert reverse.verdict is Verdict.FASTER
    assert reverse.ratio == pytest.approx(1 / 1.14)


def test_paired_catches_what_overlapping_intervals_missed() -> None:
    """The issue's case: +14 %, slower in every round, wide spread; the old rule said 'no'."""
    rng = np.random.default_rng(3)
    drift = rng.normal(0, 25, size=15)  # shared by both runtimes in a round
    b = 216 + drift
    a = b * 1.14
    summary_a, summary_b = stats.summarize(a.tolist()), stats.summarize(b.tolist())
    assert summary_a.ci_low < summary_b.ci_high  # the intervals overlap ...
    result = stats.paired(rounds(a.tolist()), rounds(b.tolist()))
    assert result.verdict is Verdict.SLOWER  # ... and yet every round says slower


def test_paired_inconclusive_reasons() -> None:
    few = stats.paired(rounds([110.0] * 5), rounds([100.0] * 5))
    assert few.verdict is Verdict.NO_DIFFERENCE
    assert few.reason.startswith("too few runs") and "below 6" in few.reason

    alternating = [100.0 * (1.3 if i % 2 else 0.8) for i in range(15)]
    spread = stats.paired(rounds(alternating), rounds([100.0] * 15))
    assert spread.verdict is Verdict.NO_DIFFERENCE
    assert spread.reason.startswith("the test did not reject")

    tiny = stats.paired(rounds([102.0] * 15), rounds([100.0] * 15))
    assert tiny.p_value < 0.05
    assert tiny.verdict is Verdict.NO_DIFFERENCE
    assert tiny.reason.startswith("under the minimum effect")


def test_paired_uses_only_rounds_both_have() -> None:
    a = {0: 120.0, 1: 121.0, 3: 119.0}
    b = {1: 100.0, 2: 100.0, 3: 100.0}
    result = stats.paired(a, b)
    assert "2 paired rounds" in result.test
    with pytest.raises(ValueError):
        stats.paired({0: 1.0}, {1: 1.0})


def test_paired_with_single_round_is_inconclusive_not_significant() -> None:
    """One run each, far apart: the old rule called this significant."""
    result = stats.paired({0: 200.0}, {0: 100.0})
    assert result.verdict is Verdict.NO_DIFFERENCE
    assert result.interval.coverage == 0


def test_sign_test_p_matches_an_exact_count() -> None:
    """scipy's binomtest against the sum of binomial terms, for 12 of 15 slower."""
    a = [110.0] * 12 + [90.0] * 3
    result = stats.paired(rounds(a), rounds([100.0] * 15))
    exact = 2 * sum(math.comb(15, k) for k in range(12, 16)) / 2**15
    assert result.p_value == pytest.approx(exact)
    assert stats.min_pairs_to_reject() == 6


@pytest.mark.parametrize("count", [1_024, 100_000])
def test_paired_at_large_counts(count: int) -> None:
    rng = np.random.default_rng(count)
    b = rng.lognormal(4, 0.1, size=count)
    a = b * rng.lognormal(0.1, 0.05, size=count)
    result = stats.paired(rounds(a.tolist()), rounds(b.tolist()))
    assert result.verdict is Verdict.SLOWER
    assert result.ratio == pytest.approx(math.exp(0.1), rel=0.01)


def _plan_rounds(plan: Plan, runtime: str) -> list[int]:
    """The measured rounds this runtime takes part in, by the plan's own rule."""
    return [r for r in range(plan.warmup, plan.warmup + plan.runs) if plan.takes_part(runtime, r)]


def test_declared_run_count_keeps_false_decisions_under_five_percent() -> None:
    """The lab config's rule (measure.runs_by_runtime): one runtime takes 8 of 15 rounds.

    The machine drifts across the run (each round 6 % slower than the one before, plus noise
    shared by the round), and both runtimes are in truth the same. Paired on the rounds both
    took part in, the verdict is 'faster' or 'slower' in at most 5 % of runs. Compared with
    every round of the other (what pairing avoids), the drift alone decides over twice as often
    as the bound allows.
    """
    plan = Plan(runs=15, warmup=2, timeout_s=1, output=Path("x"), runs_by_runtime={"few": 8})
    few, every = _plan_rounds(plan, "few"), _plan_rounds(plan, "every")
    assert (len(few), len(every)) == (8, 15) and set(few) < set(every)
    rng = np.random.default_rng(23)
    trials, paired_false, unpaired_false = 2_000, 0, 0
    for _ in range(trials):
        round_time = 100.0 * 1.06 ** np.arange(plan.warmup + plan.runs)
        round_time *= rng.lognormal(0.0, 0.1, size=round_time.size)
        a = {r: round_time[r] * rng.lognormal(0.0, 0.05) for r in few}
        b = {r: round_time[r] * rng.lognormal(0.0, 0.05) for r in every}
        paired_false += stats.paired(a, b).significant
        unpaired_false += stats.unpaired(list(a.values()), list(b.values())).significant
    assert paired_false / trials <= 0.05
    assert unpaired_false / trials > 0.1  # the drift is real: the bound above could have failed


def test_declared_run_count_still_decides_what_it_is_for() -> None:
    """A compile-at-every-start runtime, 25x slower, with 8 rounds: decided every time."""
    plan = Plan(runs=15, warmup=2, timeout_s=1, output=Path("x"), runs_by_runtime={"slow": 8})
    rng = np.random.default_rng(29)
    for _ in range(200):
        slow = {r: 2_500 * rng.lognormal(0.0, 0.3) for r in _plan_rounds(plan, "slow")}
        fast = {r: 100 * rng.lognormal(0.0, 0.3) for r in _plan_rounds(plan, "fast")}
        assert stats.paired(slow, fast).verdict is Verdict.SLOWER


# -- the unpaired test ------------------------------------------------------------------------


def test_unpaired_p_value_and_estimate_against_scipy_and_brute_force() -> None:
    rng = np.random.default_rng(11)
    a = rng.lognormal(4.2, 0.1, size=17).tolist()
    b = rng.lognormal(4.0, 0.1, size=13).tolist()
    result = stats.unpaired(a, b)
    expected_p = scipy_stats.mannwhitneyu(a, b, alternative="two-sided").pvalue
    assert result.p_value == pytest.approx(expected_p)
    differences = np.subtract.outer(np.log(a), np.log(b)).ravel()
    assert result.ratio == pytest.approx(math.exp(float(np.median(differences))))
    assert result.verdict is Verdict.SLOWER
    assert "Mann-Whitney U, 17 against 13 runs" in result.test


def test_kth_difference_by_bisection_equals_sorting() -> None:
    rng = np.random.default_rng(5)
    x = np.sort(rng.normal(size=3_000))
    y = np.sort(rng.normal(size=2_000))  # 6 million pairs: over the exact limit
    everything = np.sort(np.subtract.outer(x, y).ravel())
    for k in (0, 17, 3_000_000, everything.size - 1):
        assert stats.kth_difference(x, y, k) == pytest.approx(everything[k], abs=1e-12)


def test_unpaired_interval_coverage_in_simulation() -> None:
    rng = np.random.default_rng(99)
    trials, hits = 1_500, 0
    for _ in range(trials):
        a = rng.lognormal(0.2, 0.3, size=15)  # true ratio e^0.2
        b = rng.lognormal(0.0, 0.3, size=15)
        interval = stats.unpaired(a.tolist(), b.tolist()).interval
        hits += interval.low <= math.exp(0.2) <= interval.high
    assert abs(hits / trials - 0.95) < 4 * math.sqrt(0.95 * 0.05 / trials)


def test_unpaired_too_few_and_large() -> None:
    few = stats.unpaired([200.0, 210.0, 205.0], [100.0, 101.0, 99.0])
    assert few.verdict is Verdict.NO_DIFFERENCE and few.reason.startswith("too few runs")
    assert stats.mann_whitney_can_reject(4, 4) and not stats.mann_whitney_can_reject(3, 3)
    rng = np.random.default_rng(1)
    big = stats.unpaired(
        rng.lognormal(0.05, 0.2, size=100_000).tolist(), rng.lognormal(0, 0.2, size=100_000)
    )
    assert big.verdict is Verdict.NO_DIFFERENCE  # shown, but 5 % is not over the minimum effect
    assert big.p_value < 1e-10 and big.reason.startswith("under the minimum effect")


# -- warnings ---------------------------------------------------------------------------------


def test_warnings_are_typed_and_say_what_to_do() -> None:
    spread = stats.summarize([100.0, 60.0, 150.0, 90.0, 130.0])
    found = stats.warnings(spread, failed=2, measured=7, first_ms=400.0)
    assert [w.kind for w in found] == [
        WarningKind.FAILED_RUNS,
        WarningKind.FEW_RUNS,
        WarningKind.LARGE_SPREAD,
        WarningKind.SLOW_FIRST_RUN,
    ]
    assert all(w.remedy for w in found)
    assert "--runs" in found[1].remedy and "--warmup" in found[3].remedy
    steady = stats.summarize([100.0 + i % 3 for i in range(20)])
    assert stats.warnings(steady, failed=0, measured=20, first_ms=101.0) == []


# -- in the report ----------------------------------------------------------------------------


def render_with(tmp_path: Path, change: dict[str, list[float]]) -> str:
    """The synthetic fixture with some runtimes' counted samples replaced (ms per round)."""
    data = json.loads(SYNTHETIC.read_text())
    for runtime, values in change.items():
        counted = [s for s in data["samples"] if s["runtime"] == runtime and not s["warmup"]]
        for sample, value in zip(counted, values, strict=True):
            sample["wall_ns"], sample["ok"], sample["failure"] = int(value * 1e6), True, ""
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(data))
    return render.render([path]).text


def comparison_row(markdown: str, a: str, b: str) -> str:
    return next(line for line in markdown.splitlines() if f"**{a}** vs **{b}** |" in line)


def test_report_renders_an_inconclusive_row(tmp_path: Path) -> None:
    runc = [110.0 + 2 * i for i in range(11)]
    overlapping = [v * (1.3 if i % 2 else 0.8) for i, v in enumerate(runc)]
    markdown = render_with(tmp_path, {"ctr-runc": runc, "ctr-wasmtime-aot": overlapping})
    row = comparison_row(markdown, "ctr-wasmtime-aot", "ctr-runc")
    assert "no difference shown: the test did not reject" in row
    assert "sign test, 11 paired rounds" in row
    assert "(not a significant difference)" not in markdown
    # A row the data does decide stays decided.
    assert "**ctr-wasmtime slower**" in comparison_row(markdown, "ctr-wasmtime", "ctr-runc")


def test_runtimes_from_different_files_do_not_pair(tmp_path: Path) -> None:
    data = json.loads(SYNTHETIC.read_text())
    keep = {"ctr-runc"}
    first = dict(data, runtimes=[r for r in data["runtimes"] if r["name"] in keep])
    second = dict(data, runtimes=[r for r in data["runtimes"] if r["name"] not in keep])
    (tmp_path / "a.json").write_text(json.dumps(first))
    (tmp_path / "b.json").write_text(json.dumps(second))
    markdown = render.render([tmp_path / "a.json", tmp_path / "b.json"]).text
    row = comparison_row(markdown, "ctr-wasmtime", "ctr-runc")
    assert "Mann-Whitney U, 11 against 11 runs (unpaired)" in row
    assert "≈95.0 %" in row  # the normal approximation's coverage is marked as such
    # The same two runtimes from one file pair by round.
    assert "sign test, 11 paired rounds" in comparison_row(
        render.render([SYNTHETIC]).text, "ctr-wasmtime", "ctr-runc"
    )


def test_serving_percentiles_are_observed_latencies_by_nearest_rank() -> None:
    from labreport.analysis.serving import percentile_ms, serving_view
    from labreport.record.models import ServingLevel, ServingRecord

    latencies = [i * 1_000_000 for i in range(1, 101)]  # 1..100 ms
    assert percentile_ms(latencies, 50) == 50.0
    assert percentile_ms(latencies, 99) == 99.0
    assert percentile_ms(latencies[:1], 99) == 1.0
    assert percentile_ms([], 50) is None
    level = ServingLevel(
        concurrency=8, requests=100, ok=98, wall_ns=2_000_000_000, latencies_ns=latencies,
        errors={"HTTP 500": 2},
    )  # fmt: skip
    view = serving_view(
        ServingRecord(runtime="r", model="cgi", description="d", command="c", client="x",
                      levels=[level])
    )  # fmt: skip
    assert view.label == "r (CGI)"
    assert not view.ok  # two answers failed their check
    only = view.level(8)
    assert only is not None and only.per_second == 49.0 and only.p90_ms == 90.0
    assert view.level(1) is None
