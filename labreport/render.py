"""`labreport render`: measurement files + Jinja templates -> report.md and SVG charts.

Pure: the same files and templates give the same bytes. Every number in the report comes from
the context built here out of the measurement files; templates only choose words around it.
"""

from __future__ import annotations

import difflib
import hashlib
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from labreport import charts, fsutil, stats
from labreport.errors import LabreportError
from labreport.models import (
    ArtifactRecord,
    CheckRecord,
    Detail,
    Environment,
    ImageRecord,
    Measurement,
    MemoryRecord,
    Sample,
    ShimPhase,
    load_measurement,
)

DEFAULT_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
DEFAULT_TEMPLATE = "report.md.j2"
# What a template's own code can raise while it renders; reported with the template and line.
TEMPLATE_RUNTIME_ERRORS = (
    jinja2.TemplateError,
    TypeError,
    ValueError,
    ArithmeticError,
    AttributeError,
    KeyError,
    IndexError,
    RecursionError,
)
CHART_DIR = "report"


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


@dataclass
class Report:
    markdown: str
    charts: list[charts.Chart]


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
            if view.valid_ms:
                view.startup = stats.summarize(view.valid_ms)
            engine = [s.engine_run_ns / 1e6 for s in counted if s.ok and s.engine_run_ns]
            if engine:
                view.engine_run = stats.summarize(engine)
            first_counted = counted[0].wall_ns / 1e6 if counted and counted[0].ok else None
            view.warnings = stats.warnings(view.startup, view.failed, view.measured, first_counted)
            view.shim = shim_view(samples)
            view.task_phases = median_phases(
                [s.task_phases for s in counted if s.ok and s.task_phases]
            )
            views[record.name] = view
    return views


class Context:
    """What templates see; methods are callable from templates (compare, memory_of, ...)."""

    def __init__(self, sources: Sequence[Source], chart_dir: str, with_charts: bool = True) -> None:
        first = sources[0].measurement
        self.sources = sources
        self.lab = first.lab
        self.title = first.title
        self.partial = [s.path for s in sources if s.measurement.partial]
        self.environment = first.environment
        self.environments = {s.path: s.measurement.environment for s in sources}
        # The first target is the primary one: single-target sections and the answers use it;
        # further targets appear beside it in the tables and in the comparison across targets.
        self.targets = group_targets(sources)
        self.multi = len(self.targets) > 1
        primary = self.targets[0]
        self.runtimes = primary.runtimes
        self.artifacts: dict[str, ArtifactRecord] = {}
        self.skipped_builds: dict[str, str] = {}  # optional builds no source made, and why
        self.images: dict[str, ImageRecord] = {}
        self.memory: list[MemoryRecord] = []
        self.checks: list[CheckRecord] = []
        self.commands: list[str] = []
        for source in primary.sources:
            result = source.measurement
            for artifact in result.artifacts:
                self.artifacts.setdefault(artifact.name, artifact)
            for image in result.images:
                self.images.setdefault(image.name, image)
            for name, reason in result.skipped_builds.items():
                self.skipped_builds.setdefault(name, reason)
            self.memory += result.memory
            self.checks += result.checks
            self.commands += [c for c in result.commands if c not in self.commands]
        for name in self.artifacts:
            self.skipped_builds.pop(name, None)
        self.runs = first.runs
        self.warmup = first.warmup
        self.chart_dir = chart_dir
        self.charts = self._charts() if with_charts else {}
        self._comparisons: dict[tuple[str, str], ComparisonView | None] = {}

    # -- called from templates --------------------------------------------------------------

    def measured(self) -> list[RuntimeView]:
        return [v for v in self.runtimes.values() if v.measured_ok]

    def startup_rows(self) -> list[RuntimeView]:
        """Every target's measured runtimes, the same runtime's targets side by side."""
        order = {name: index for index, name in enumerate(self._all_names())}
        rows = [v for t in self.targets for v in t.runtimes.values() if v.measured_ok]
        return sorted(rows, key=lambda view: order[view.name])  # stable: targets stay in order

    def unmeasured_rows(self) -> list[RuntimeView]:
        return [v for t in self.targets for v in t.runtimes.values() if not v.measured_ok]

    def _all_names(self) -> list[str]:
        names: list[str] = []
        for target in self.targets:
            names += [name for name in target.runtimes if name not in names]
        return names

    def image_rows(self) -> list[tuple[str, ImageRecord]]:
        """Each target's images, one row per image name (its first file's)."""
        rows = []
        for target in self.targets:
            images: dict[str, ImageRecord] = {}
            for source in target.sources:
                for image in source.measurement.images:
                    images.setdefault(image.name, image)
            rows += [(target.short, image) for image in images.values()]
        return rows

    def memory_rows(self) -> list[tuple[str, MemoryRecord]]:
        return [
            (target.short, record)
            for target in self.targets
            for source in target.sources
            for record in source.measurement.memory
        ]

    def across_targets(self) -> list[ComparisonView]:
        """Each runtime on every further target against the primary one (unpaired)."""
        primary, rows = self.targets[0], []
        for target in self.targets[1:]:
            for name, view in target.runtimes.items():
                base = primary.runtimes.get(name)
                if view.startup is None or base is None or base.startup is None:
                    continue
                result = stats.unpaired(view.valid_ms, base.valid_ms)
                rows.append(
                    ComparisonView(
                        f"{name} on {target.short}",
                        f"{name} on {primary.short}",
                        view.startup.median,
                        base.startup.median,
                        result,
                    )
                )
        return rows

    def unmeasured(self) -> list[RuntimeView]:
        return [v for v in self.runtimes.values() if not v.measured_ok]

    def runtime(self, name: str) -> RuntimeView | None:
        view = self.runtimes.get(name)
        return view if view is not None and view.measured_ok else None

    def compare(self, a: str, b: str) -> ComparisonView | None:
        """Startup of a against b; None when either was not measured.

        Runtimes of one file ran in the same interleaved rounds, so their samples pair by
        round; runtimes from different files do not pair.
        """
        key = (a, b)
        if key not in self._comparisons:
            self._comparisons[key] = self._compare(a, b)
        return self._comparisons[key]

    def _compare(self, a: str, b: str) -> ComparisonView | None:
        left, right = self.runtime(a), self.runtime(b)
        if left is None or right is None:
            return None
        assert left.startup is not None and right.startup is not None
        pairs = set(left.valid_by_round) & set(right.valid_by_round)
        if left.source == right.source and pairs:
            result = stats.paired(left.valid_by_round, right.valid_by_round)
        else:
            result = stats.unpaired(left.valid_ms, right.valid_ms)
        return ComparisonView(a, b, left.startup.median, right.startup.median, result)

    def memory_of(self, runtime: str, mode: str) -> MemoryRecord | None:
        return next((m for m in self.memory if m.runtime == runtime and m.mode == mode), None)

    def check(self, name: str, runtime: str) -> CheckRecord | None:
        return next((c for c in self.checks if c.name == name and c.runtime == runtime), None)

    def artifact(self, name: str) -> ArtifactRecord | None:
        return self.artifacts.get(name)

    def image(self, name: str) -> ImageRecord | None:
        return self.images.get(name)

    # -- charts -----------------------------------------------------------------------------

    def _charts(self) -> dict[str, charts.Chart]:
        made: dict[str, charts.Chart] = {}
        timed = {
            (f"{v.name} @ {v.target}" if self.multi else v.name): v.valid_ms
            for v in self.startup_rows()
        }
        if timed:
            made["startup"] = charts.startup(timed)
        groups: dict[str, dict[str, int]] = {}
        for artifact in self.artifacts.values():
            if artifact.origin == "host-build":
                groups.setdefault("binary / module", {})[artifact.name] = artifact.size_bytes
        for target_short, image in self.image_rows():
            name = f"{image.name} @ {target_short}" if self.multi else image.name
            groups.setdefault("image content", {})[name] = image.content_size_uncompressed_bytes
            groups.setdefault("layers, gzip", {})[name] = image.layers_size_compressed_bytes
            groups.setdefault("image archive", {})[name] = image.archive_size_bytes
        if groups:
            made["sizes"] = charts.sizes(groups)
        bars: dict[str, int] = {}
        for target_short, record in self.memory_rows():
            who = f"{record.runtime} @ {target_short}" if self.multi else record.runtime
            idle = record.idle_median_bytes()
            if idle is not None:
                bars[f"{who}: server idle"] = idle
            if record.peak_bytes:
                bars[f"{who}: {record.mode} peak"] = record.peak_bytes
            if record.linear_memory_bytes:
                bars[f"{who}: linear memory"] = record.linear_memory_bytes
        if bars:
            made["memory"] = charts.memory(bars)
        return made

    def chart(self, name: str) -> str:
        """Markdown for a chart: an image with alt text, or a note that there is no data."""
        found = self.charts.get(name)
        if found is None:
            return f"_No {name} chart: nothing of that kind was measured._"
        return f"![{found.alt}]({self.chart_dir}/{found.name})"


# -- formatting filters ---------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "not measured"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.2f} ms"


def fmt_bytes(value: int | None) -> str:
    return "not measured" if value is None else f"{value:,} B"


def fmt_mib(value: int | None) -> str:
    return "not measured" if value is None else f"{value / 1048576:.2f} MiB"


def fmt_pct(value: float) -> str:
    return f"{value:+,.1f} %"


def fmt_times(value: float) -> str:
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


# -- templates ------------------------------------------------------------------------------


def environment(templates: Path | None) -> jinja2.Environment:
    """User templates (if any) first, then the defaults: a user overrides or adds files."""
    search = [str(templates)] if templates else []
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([*search, str(DEFAULT_TEMPLATES)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # Markdown, not HTML
    )
    env.filters.update(ms=fmt_ms, bytes=fmt_bytes, mib=fmt_mib, pct=fmt_pct, times=fmt_times)
    return env


def _template_location(error: BaseException) -> str:
    """template:line of the innermost template frame (Jinja rewrites tracebacks to them)."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename.endswith(".j2")]
    if not frames:
        return getattr(error, "name", None) or "template"
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


def load_sources(paths: Sequence[Path]) -> list[Source]:
    if not paths:
        raise LabreportError("no measurement file given", "run 'labreport measure' first")
    sources = []
    for path in paths:
        measurement = load_measurement(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        sources.append(Source(path.as_posix(), digest, measurement))
    return sources


def render(
    paths: Sequence[Path],
    templates: Path | None = None,
    template: str = DEFAULT_TEMPLATE,
    chart_dir: str = CHART_DIR,
    with_charts: bool = True,
) -> Report:
    """The report of these files; with_charts=False skips drawing (the fuzzer's fast lane)."""
    if templates is not None and not templates.is_dir():
        raise LabreportError(
            f"--templates {templates}: no such folder",
            "give a folder of templates (copy templates/, see templates/README.md)",
        )
    sources = load_sources(paths)
    context = Context(sources, chart_dir, with_charts)
    env = environment(templates)
    try:
        markdown = env.get_template(template).render(ctx=context)
    except jinja2.TemplateNotFound as error:
        raise LabreportError(
            f"template {error.name} not found in {templates or DEFAULT_TEMPLATES}",
            "check --template and --templates",
        ) from error
    except jinja2.UndefinedError as error:
        raise LabreportError(
            f"{_template_location(error)}: {error.message}",
            "fix the template: every variable must exist (see templates/README.md)",
        ) from error
    except jinja2.TemplateSyntaxError as error:
        raise LabreportError(
            f"{error.name or template}:{error.lineno}: {error.message}", "fix the template"
        ) from error
    except TEMPLATE_RUNTIME_ERRORS as error:
        raise LabreportError(
            f"{_template_location(error)}: {type(error).__name__}: {error}",
            "fix the template (a filter on the wrong type, a division by zero, an include loop)",
        ) from error
    used = [c for c in context.charts.values() if f"{chart_dir}/{c.name}" in markdown]
    return Report(markdown, used)


def outputs(report: Report, output: Path) -> dict[Path, str]:
    chart_root = output.parent / CHART_DIR
    files = {output: report.markdown}
    files.update({chart_root / chart.name: chart.svg for chart in report.charts})
    return files


def write(report: Report, output: Path) -> list[Path]:
    """report.md and its charts, all or none: never a report that links to missing charts."""
    files = outputs(report, output)
    fsutil.atomic_write_all(files)
    return list(files)


def stale(report: Report, output: Path, context_lines: int = 2) -> list[str]:
    """Short diffs for every file that differs from what rendering gives now."""
    problems = []
    for path, text in outputs(report, output).items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        if current is None:
            problems.append(f"{path}: missing")
            continue
        diff = list(
            difflib.unified_diff(
                current.splitlines(),
                text.splitlines(),
                f"{path} (on disk)",
                f"{path} (rendered)",
                n=context_lines,
                lineterm="",
            )
        )
        shown = diff[:40] + ([f"... {len(diff) - 40} more diff lines"] if len(diff) > 40 else [])
        problems.append("\n".join(shown))
    return problems


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
