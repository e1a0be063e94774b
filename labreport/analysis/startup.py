"""Startup, per runtime and target, computed once: samples grouped by target (engine and host)
and runtime, their statistics and warnings, and the comparison of two runtimes. The report, the
terminal tables and `compare` read these; none of them computes a median of its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from labreport.analysis import stats
from labreport.analysis.phases import PhaseView, ShimView, median_phases, shim_view
from labreport.analysis.sources import Source
from labreport.errors import LabreportError
from labreport.record.models import Detail, Environment, Measurement, Sample


@dataclass
class RuntimeView:
    # What a template may call (report/sandbox.py allows nothing else).
    TEMPLATE_CALLS: ClassVar[frozenset[str]] = frozenset({"task_phase"})
    name: str
    description: str
    available: bool
    reason: str
    command: str
    details: dict[str, Detail]
    source: str
    declared_runs: int | None = None  # fewer measured runs, by the lab config's declared rule
    target: str = ""  # the short label of the target it was measured on
    valid_ms: list[float] = field(default_factory=list)
    valid_by_round: dict[int, float] = field(default_factory=dict)  # pairs with other runtimes
    measured: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)
    first_ms: float | None = None  # the very first (warm-up) run, when it passed its check
    startup: stats.Summary | None = None
    engine_run: stats.Summary | None = None
    warnings: list[stats.SampleWarning] = field(default_factory=list)
    shim: ShimView | None = None
    task_phases: list[PhaseView] = field(default_factory=list)  # containerd's events (ctr)

    def task_phase(self, name: str) -> float | None:
        return next((p.median_ms for p in self.task_phases if p.name == name), None)

    @property
    def measured_ok(self) -> bool:
        return self.startup is not None


@dataclass(frozen=True)
class ComparisonView:
    """Startup of runtime a against b: both medians and the comparison computed once."""

    a: str
    b: str
    a_median: float
    b_median: float
    result: stats.Comparison

    @property
    def ratio(self) -> float:
        return self.result.ratio

    @property
    def percent(self) -> float:
        return self.result.percent

    @property
    def factor(self) -> float:
        return self.result.factor

    @property
    def significant(self) -> bool:
        return self.result.significant

    @property
    def faster(self) -> str:
        return self.a if self.result.ratio < 1 else self.b

    @property
    def slower(self) -> str:
        return self.b if self.result.ratio < 1 else self.a


def compare_views(left: RuntimeView, right: RuntimeView, a: str, b: str) -> ComparisonView:
    """Startup of left (named a) against right (named b), both measured.

    Runtimes of one file ran in the same interleaved rounds, so their samples pair by round
    (sign test); runtimes from different files, hosts or engines do not (Mann-Whitney U).
    """
    assert left.startup is not None and right.startup is not None
    pairs = set(left.valid_by_round) & set(right.valid_by_round)
    if left.source == right.source and pairs:
        result = stats.paired(left.valid_by_round, right.valid_by_round)
    else:
        result = stats.unpaired(left.valid_ms, right.valid_ms)
    return ComparisonView(a, b, left.startup.median, right.startup.median, result)


@dataclass
class Target:
    """One engine on one host, and the measurement files taken on it."""

    short: str  # host / engine (where it came from), for table cells and chart labels
    sources: list[Source]
    runtimes: dict[str, RuntimeView] = field(default_factory=dict)

    @property
    def environment(self) -> Environment:
        return self.sources[0].measurement.environment


def target_identity(measurement: Measurement) -> tuple[str, str]:
    """(key, label) of the engine and host a measurement was taken on: same key, same target."""
    env = measurement.environment
    engine = env.engine
    version = str(engine.get("engine_version", "no engine"))
    source = str(engine.get("source", ""))
    key = f"{env.host}|{engine.get('engine_id') or version + '|' + source}"
    engine_text = f"Docker {version}" if "engine_version" in engine else "no Docker engine"
    return key, f"{env.host} / {engine_text}" + (f" ({source})" if source else "")


def group_targets(sources: Sequence[Source]) -> list[Target]:
    """Sources grouped by target, in the order they were given; one lab only."""
    labs = sorted({source.measurement.lab for source in sources})
    if len(labs) > 1:
        raise LabreportError(
            f"files of different labs: {', '.join(labs)} "
            f"({', '.join(source.path for source in sources)})",
            "render the files of one lab together",
        )
    targets: dict[str, Target] = {}
    for source in sources:
        key, label = target_identity(source.measurement)
        targets.setdefault(key, Target(label, [])).sources.append(source)
    for target in targets.values():
        target.runtimes = runtime_views(target.sources)
        for view in target.runtimes.values():
            view.target = target.short
    return list(targets.values())


def runtime_views(sources: Sequence[Source]) -> dict[str, RuntimeView]:
    views: dict[str, RuntimeView] = {}
    for source in sources:
        result = source.measurement
        by_runtime: dict[str, list[Sample]] = {}
        for sample in result.samples:
            by_runtime.setdefault(sample.runtime, []).append(sample)
        for record in result.runtimes:
            if record.name in views and views[record.name].available:
                if record.available:
                    raise LabreportError(
                        f"{source.path}: runtime {record.name} was also measured in "
                        f"{views[record.name].source}",
                        "pass only one file per runtime",
                    )
                continue
            view = RuntimeView(
                name=record.name,
                description=record.description,
                available=record.available,
                reason=record.reason,
                command=record.command,
                details=dict(record.details),
                declared_runs=record.declared_runs,
                source=source.path,
            )
            samples = by_runtime.get(record.name, [])
            first = next((s for s in samples if s.round == 0), None)
            if first is not None and first.ok:
                view.first_ms = first.wall_ns / 1e6
            counted = sorted((s for s in samples if not s.warmup), key=lambda s: s.round)
            view.measured = len(counted)
            view.valid_by_round = {s.round: s.wall_ns / 1e6 for s in counted if s.ok}
            view.valid_ms = list(view.valid_by_round.values())
            view.failed = view.measured - len(view.valid_ms)
            view.failures = sorted({s.failure for s in counted if not s.ok})
            if view.available and not counted and not view.reason:
                # Never "every run failed its check" for runs that never happened.
                view.reason = (
                    f"not run: the measurement stopped first ({result.partial_reason})"
                    if result.partial
                    else "no counted run in the file"
                )
            if view.valid_ms:
                view.startup = stats.summarize(view.valid_ms)
            engine = [s.engine_run_ns / 1e6 for s in counted if s.ok and s.engine_run_ns]
            if engine:
                view.engine_run = stats.summarize(engine)
            first_counted = counted[0].wall_ns / 1e6 if counted and counted[0].ok else None
            view.warnings = stats.warnings(
                view.startup,
                view.failed,
                view.measured,
                first_counted,
                declared_runs=view.declared_runs is not None,
            )
            view.shim = shim_view(samples)
            view.task_phases = median_phases(
                [s.task_phases for s in counted if s.ok and s.task_phases]
            )
            views[record.name] = view
    return views
