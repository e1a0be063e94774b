"""Per-runtime views of measurement files, computed once: samples grouped by runtime and target,
their statistics and warnings, the shims' phases and containerd's events. The report, the
terminal tables and `compare` read these; none of them computes a median of its own."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labreport.analysis import stats
from labreport.errors import LabreportError
from labreport.record.models import (
    Detail,
    Environment,
    Measurement,
    Sample,
    ServingRecord,
    ShimPhase,
    load_measurement,
)

# The shims' marks in the order a start passes them (shim/src/lib.rs), then the client's return.
PHASE_ORDER = (
    "shim_main", "run_wasi", "engine", "read", "key", "compile", "store", "load", "instantiate",
    "exit", "client_return",
)  # fmt: skip


@dataclass(frozen=True)
class PhaseView:
    """One phase of a start as the shim timed it: its median over a set of starts."""

    name: str
    median_ms: float


@dataclass
class ShimView:
    """What the wasmtime shim recorded about a runtime's starts.

    `phases` are the medians over the counted, checked starts the shim served the usual way
    (from its cache on the caching shim, compiling on the other): `basis` says which and how
    many. `first` is the first start's own breakdown (round 0: the compile-and-store start on
    the caching shim). `outcomes` counts every start's cache outcome, warm-ups included.
    """

    basis: str
    count: int
    phases: list[PhaseView]
    first: list[PhaseView]
    first_cache: str
    outcomes: dict[str, int]
    misses: list[str]  # the reasons of counted starts that missed the cache

    @property
    def total_ms(self) -> float:
        return sum(p.median_ms for p in self.phases)

    def rows(self) -> list[tuple[str, float | None, float | None]]:
        """(phase, first start's ms, median ms) in the order a start goes through them."""
        first = {p.name: p.median_ms for p in self.first}
        usual = {p.name: p.median_ms for p in self.phases}
        names = [n for n in PHASE_ORDER if n in first or n in usual]
        names += [n for n in [*first, *usual] if n not in names]
        return [(name, first.get(name), usual.get(name)) for name in dict.fromkeys(names)]

    def phase(self, name: str) -> float | None:
        return next((p.median_ms for p in self.phases if p.name == name), None)


def median_phases(runs: Sequence[Sequence[ShimPhase]]) -> list[PhaseView]:
    """Each phase's median over runs, in the order the runs give them."""
    names: list[str] = []
    for phases in runs:
        names += [p.name for p in phases if p.name not in names]
    return [
        PhaseView(
            name, stats.summarize([p.ns / 1e6 for r in runs for p in r if p.name == name]).median
        )
        for name in names
    ]


def shim_view(samples: Sequence[Sample]) -> ShimView | None:
    recorded = [s for s in samples if s.shim is not None]
    if not recorded:
        return None
    outcomes: dict[str, int] = {}
    for sample in recorded:
        assert sample.shim is not None
        outcomes[sample.shim.cache or "unknown"] = (
            outcomes.get(sample.shim.cache or "unknown", 0) + 1
        )
    usual = "hit" if "hit" in outcomes else "off"
    counted = [s.shim for s in recorded if not s.warmup and s.ok and s.shim and s.shim.phases]
    basis_records = [r for r in counted if r.cache == usual]
    phases = median_phases([r.phases for r in basis_records])
    first = next((s for s in recorded if s.round == 0 and s.warmup), recorded[0])
    assert first.shim is not None
    return ShimView(
        basis={"hit": "cached starts", "off": "starts"}[usual],
        count=len(basis_records),
        phases=phases,
        first=[PhaseView(p.name, p.ns / 1e6) for p in first.shim.phases],
        first_cache=first.shim.facts.get("cache", ""),
        outcomes=dict(sorted(outcomes.items())),
        misses=sorted({r.facts.get("cache", "") for r in counted if r.cache == "miss"}),
    )


@dataclass
class RuntimeView:
    name: str
    description: str
    available: bool
    reason: str
    command: str
    details: dict[str, Detail]
    source: str
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
class Source:
    path: str
    sha256: str
    measurement: Measurement


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
                declared_runs="runs_rule" in view.details,
            )
            view.shim = shim_view(samples)
            view.task_phases = median_phases(
                [s.task_phases for s in counted if s.ok and s.task_phases]
            )
            views[record.name] = view
    return views


def load_sources(paths: Sequence[Path], shown_from: Path | None = None) -> list[Source]:
    """The files, each named as given or, with shown_from (a report's folder), relative to it:
    a report names its sources the same from whatever folder it was rendered."""
    if not paths:
        raise LabreportError("no measurement file given", "run 'labreport measure' first")
    sources = []
    for path in paths:
        measurement = load_measurement(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        shown = Path(os.path.relpath(path, shown_from)) if shown_from is not None else path
        sources.append(Source(shown.as_posix(), digest, measurement))
    return sources


def default_sources(directory: Path) -> list[Path]:
    """The complete measurement files in directory; partial ones only when named."""
    found = sorted(
        p
        for p in directory.glob("*.json")
        if p.is_file() and not p.name.endswith(".partial.json")  # a FIFO would hang the read
    )
    if not found:
        raise LabreportError(
            f"no measurement files in {directory}", "run 'labreport measure' or pass files"
        )
    return found


@dataclass(frozen=True)
class ServingLevelView:
    """One concurrency level, computed at render time from the raw latencies."""

    concurrency: int
    requests: int
    ok: int
    per_second: float  # checked responses per second of the level's wall time
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    errors: dict[str, int]
    stopped: str


@dataclass(frozen=True)
class ToolLevelView:
    """The load tool's level at one concurrency: status codes only, no body checked."""

    concurrency: int
    requested: int
    ok: int  # answered with status 200
    other: int  # answered with another status, or not at all
    per_second: float  # status-200 answers per second of the tool's span
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    failure: str


@dataclass(frozen=True)
class ServingView:
    record: ServingRecord
    levels: list[ServingLevelView]
    tool_levels: list[ToolLevelView]

    @property
    def runtime(self) -> str:
        return self.record.runtime

    @property
    def label(self) -> str:
        """The runtime, and how it served where one runtime served two ways (native)."""
        return self.record.runtime if self.record.model != "cgi" else f"{self.record.runtime} (CGI)"

    @property
    def ok(self) -> bool:
        return not self.record.failure and all(level.ok == level.requests for level in self.levels)

    def level(self, concurrency: int) -> ServingLevelView | None:
        return next((v for v in self.levels if v.concurrency == concurrency), None)

    def tool_level(self, concurrency: int) -> ToolLevelView | None:
        return next((v for v in self.tool_levels if v.concurrency == concurrency), None)

    def tool_pace(self, concurrency: int) -> float | None:
        """The load tool's rate over the checked client's at one concurrency, where both served
        every request: well above 1, the client, not the service, set the checked level's pace."""
        level, tool = self.level(concurrency), self.tool_level(concurrency)
        if not (level and tool and level.per_second and tool.per_second):
            return None
        if level.ok < level.requests or tool.other:
            return None
        return tool.per_second / level.per_second


def percentile_ms(latencies_ns: Sequence[int], q: float) -> float | None:
    """The q-th percentile (nearest rank, so always an observed latency), in ms."""
    if not latencies_ns:
        return None
    ordered = sorted(latencies_ns)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1] / 1e6


def serving_view(record: ServingRecord) -> ServingView:
    levels = [
        ServingLevelView(
            concurrency=level.concurrency,
            requests=level.requests,
            ok=level.ok,
            per_second=level.ok / (level.wall_ns / 1e9) if level.wall_ns else 0.0,
            p50_ms=percentile_ms(level.latencies_ns, 50),
            p90_ms=percentile_ms(level.latencies_ns, 90),
            p99_ms=percentile_ms(level.latencies_ns, 99),
            errors=dict(level.errors),
            stopped=level.stopped,
        )
        for level in record.levels
    ]
    tool_levels = []
    for tool in record.tool_levels:
        ok = tool.statuses.get("200", 0)
        tool_levels.append(
            ToolLevelView(
                concurrency=tool.concurrency,
                requested=tool.requested,
                ok=ok,
                other=tool.requested - ok,
                per_second=ok / (tool.span_ns / 1e9) if tool.span_ns else 0.0,
                p50_ms=percentile_ms(tool.latencies_ns, 50),
                p90_ms=percentile_ms(tool.latencies_ns, 90),
                p99_ms=percentile_ms(tool.latencies_ns, 99),
                failure=tool.failure,
            )
        )
    return ServingView(record, levels, tool_levels)
