"""The measurement file: versioned, strict, raw. Statistics are computed when rendering."""

from __future__ import annotations

import datetime
import re
import statistics
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from labreport.config import LAB_NAME, Mode

SCHEMA_VERSION = 5
# Older files are read as they are: nothing was removed. Version 1 came before the shims' phase
# records, version 2 before serving under load (`serving`), version 3 before a load tool's
# levels beside the checked ones (`tool_levels`).
READABLE_VERSIONS = frozenset({1, 2, 3, 4, SCHEMA_VERSION})
SCHEMA_NAME = "labreport.measurement"


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _real_time(text: str) -> str:
    """An ISO 8601 time that exists (not 2026-02-30), with its UTC offset, kept as written."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError as error:
        raise ValueError(f"{text[:40]!r} is not a real date and time") from error
    if moment.utcoffset() is None:
        raise ValueError(f"{text[:40]!r} has no UTC offset")
    return text


# Names that reach a report's tables, titles and chart labels: a runtime's, a lab's, a host's.
# Checked where they enter, so that no HTML, newline or Markdown comes in through one.
RuntimeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
LabName = Annotated[str, StringConstraints(pattern=LAB_NAME)]
HostName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")]
Timestamp = Annotated[str, AfterValidator(_real_time)]
TARGET_WORDS = r"[A-Za-z0-9][A-Za-z0-9._+~ -]{0,63}"


class InstallRecord(Record):
    """How the labreport that measured was installed: a wheel, or a checkout at a commit."""

    kind: Literal["wheel", "checkout"]
    commit: str | None = Field(default=None, pattern=r"^[0-9a-f]{40}$")
    modified: bool | None = None  # the checkout's package (labreport/) had uncommitted changes


class Environment(Record):
    host: HostName
    kernel: str
    os: str
    cpu_model: str
    cpu_cores: int = Field(gt=0)
    memory_total_bytes: int | None = Field(default=None, gt=0)  # None: /proc/meminfo unreadable
    python_version: str
    labreport_version: str
    labreport_install: InstallRecord | None = None  # None in files measured before it was kept
    go_version: str
    engine: dict[str, str | list[str]] = Field(default_factory=dict)
    # Which containerd served the ctr runtimes: the engine's own or a private one.
    containerd: dict[str, str] = Field(default_factory=dict)
    tool_versions: dict[str, str] = Field(default_factory=dict)
    source_sha256: dict[str, str]
    lab_config_sha256: str

    @field_validator("engine")
    @classmethod
    def _target_words(cls, engine: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        """The engine's version and source name a target in the report's tables and charts:
        words, not markup or lines."""
        for key in ("engine_version", "source"):
            value = engine.get(key)
            if value is not None and not re.fullmatch(TARGET_WORDS, str(value)):
                raise ValueError(f"engine.{key} {str(value)[:40]!r} is not a version or a name")
        return engine


class ArtifactRecord(Record):
    """A file a build produced: on the host, or taken out of an image."""

    name: str
    origin: Literal["host-build", "image"]
    path: str
    size_bytes: int = Field(gt=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    build_command: str
    build_seconds: float | None = Field(default=None, ge=0)


FILES_KEPT = 20  # an image's file paths kept in its record
# An image's three sizes, by field name; each comes with the method that found it.
SIZE_FIELDS = (
    "content_size_uncompressed_bytes",
    "layers_size_compressed_bytes",
    "archive_size_bytes",
)


class ImageRecord(Record):
    """One image, three sizes that must never be mixed up."""

    name: str
    reference: str
    image_id: str
    platform: str
    layer_count: int = Field(ge=0)
    content_size_uncompressed_bytes: int = Field(gt=0)
    layers_size_compressed_bytes: int = Field(gt=0)
    archive_size_bytes: int = Field(gt=0)
    size_methods: dict[str, str]  # how each of the three sizes was found, by field name
    build_command: str
    # What the image holds, read from its layers (older files: not recorded): its entrypoint,
    # how many regular files, and the first FILES_KEPT of their paths in layer order. An image
    # whose only file is its entrypoint was built on no base image (FROM scratch).
    entrypoint: list[str] = Field(default_factory=list, max_length=64)
    file_count: int | None = Field(default=None, ge=0)
    files: list[str] = Field(default_factory=list, max_length=FILES_KEPT)

    @model_validator(mode="after")
    def _files_counted(self) -> ImageRecord:
        if self.file_count is not None and len(self.files) > self.file_count:
            raise ValueError(f"{len(self.files)} files listed but file_count is {self.file_count}")
        return self

    @field_validator("size_methods")
    @classmethod
    def _every_size_says_how(cls, methods: dict[str, str]) -> dict[str, str]:
        missing = [name for name in SIZE_FIELDS if name not in methods]
        if missing:
            raise ValueError(f"no method for {', '.join(missing)}")
        return methods


Detail = str | int | float | bool


class RuntimeRecord(Record):
    name: RuntimeName
    description: str
    available: bool
    reason: str = ""
    command: str = ""
    # Facts a runtime found while preparing: compile path, compile seconds, socket, versions.
    details: dict[str, Detail] = Field(default_factory=dict)
    # The measured runs the lab config declared for it (measure.runs_by_runtime) where fewer
    # than the run's --runs; None: it took part in every round.
    declared_runs: int | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _declared_runs_as_text(cls, data: Any) -> Any:
        """Files of schema 4 and older state the declared count as text, in details."""
        details = data.get("details") if isinstance(data, dict) else None
        if not isinstance(details, dict) or "runs_rule" not in details:
            return data
        count = re.match(r"fixed: (\d+) measured runs", str(details["runs_rule"]))
        kept = {key: value for key, value in details.items() if key != "runs_rule"}
        return {**data, "details": kept, "declared_runs": int(count[1]) if count else None}


class ShimPhase(Record):
    name: str
    ns: int = Field(ge=0)


class ShimRecord(Record):
    """One start as the wasmtime shim timed it: consecutive phases from the client's spawn to
    its return (CLOCK_MONOTONIC on both sides), and what the shim found (cache hit or miss)."""

    shim: str
    phases: list[ShimPhase]
    facts: dict[str, str] = Field(default_factory=dict)

    @property
    def cache(self) -> str:
        """hit, miss or off (the shim that compiles at every start)."""
        return self.facts.get("cache", "").split(":", 1)[0]


class Sample(Record):
    """One spawn-to-exit run of the CLI mode, with the verdict on its output."""

    runtime: RuntimeName
    round: int = Field(ge=0)
    warmup: bool
    wall_ns: int = Field(gt=0)
    ok: bool
    failure: str = ""
    exit_code: int | None = None
    engine_run_ns: int | None = Field(default=None, gt=0)
    started_at_unix_s: float = Field(gt=0)
    shim: ShimRecord | None = None  # the wasmtime shims' own timeline of this start
    # containerd's events of this run (ctr): spawn -> task created -> started -> exited -> return
    task_phases: list[ShimPhase] | None = None


class MemoryReading(Record):
    phase: Literal["idle", "load"]
    at_s: float = Field(ge=0)
    bytes: int = Field(ge=0)


class MemoryRecord(Record):
    """Server mode (readings idle and under load, then the peak) or one CLI run (peak only)."""

    # What a template may call (report/sandbox.py allows nothing else).
    TEMPLATE_CALLS: ClassVar[frozenset[str]] = frozenset({"idle_median_bytes", "load_max_bytes"})

    runtime: RuntimeName
    mode: Literal["server", "once"] = "server"
    method: str
    readings: list[MemoryReading]
    peak_bytes: int | None = Field(default=None, gt=0)
    peak_method: str = ""
    # The same method on every runtime: peak RSS (VmHWM) of the serving process, from the host.
    process_peak_rss_bytes: int | None = Field(default=None, gt=0)
    requests_sent: int = Field(default=0, ge=0)
    requests_ok: int = Field(default=0, ge=0)
    # WASM only: the instance's linear memory when the module exited (Memory.data_len).
    linear_memory_bytes: int | None = Field(default=None, gt=0)
    failure: str = ""

    def idle_median_bytes(self) -> int | None:
        idle = [r.bytes for r in self.readings if r.phase == "idle"]
        return int(statistics.median(idle)) if idle else None

    def load_max_bytes(self) -> int | None:
        return max((r.bytes for r in self.readings if r.phase == "load"), default=None)


class ServingLevel(Record):
    """A bounded load at one concurrency: every response checked, every latency kept."""

    concurrency: int = Field(ge=1)
    requests: int = Field(ge=0)
    ok: int = Field(ge=0)
    wall_ns: int = Field(ge=0)
    # One per response, in the order they finished; failed ones too (their error is counted).
    latencies_ns: list[int] = Field(default_factory=list)
    errors: dict[str, int] = Field(default_factory=dict)  # what went wrong -> how often
    stopped: str = ""  # why the level ended before its count, if it did


class ToolLevel(Record):
    """The same load from a load tool (hey), right after the checked level at its concurrency:
    HTTP status codes only, no body checked."""

    concurrency: int = Field(ge=1)
    requested: int = Field(ge=0)
    # One per answered request (any status), in the tool's order, at the tool's resolution.
    latencies_ns: list[int] = Field(default_factory=list)
    statuses: dict[str, int] = Field(default_factory=dict)  # HTTP status -> how many
    unanswered: int = Field(default=0, ge=0)  # no response: refused, reset, timed out
    # From the first request's start to the last answer, by the tool's own clock.
    span_ns: int = Field(default=0, ge=0)
    failure: str = ""  # the tool did not run to the end


class ServingRecord(Record):
    """One runtime serving the lab's requests: how it serves, its cold request, and the load."""

    runtime: RuntimeName
    # server: one long-lived process answers every request; wagi: a fresh WASM instance per
    # request (the module compiled once per service); cgi: a fresh process per request.
    model: Literal["server", "wagi", "cgi"]
    description: str
    command: str
    client: str  # what sent the requests
    # From the start command to the first checked response (the service's cold start).
    ready_ns: int | None = Field(default=None, ge=0)
    # The first request's own latency, once the service answered.
    first_request_ns: int | None = Field(default=None, ge=0)
    levels: list[ServingLevel] = Field(default_factory=list)
    failure: str = ""
    # The load tool beside labreport's checked client: what it is, how it was run (with
    # {concurrency} and {requests} for each level), and why none ran where none did.
    tool: str = ""
    tool_command: str = ""
    tool_levels: list[ToolLevel] = Field(default_factory=list)
    tool_missing: str = ""


ALL_MODES: tuple[Mode, ...] = ("cli", "server", "wagi")
# A captured output is kept up to this many characters (the rest is cut, and said so).
MAX_CAPTURED_CHARS = 2000


class CheckRecord(Record):
    """A functional check that is not a timed sample: the WAGI response, server mode on WASI."""

    name: str
    runtime: RuntimeName
    ok: bool
    detail: str
    command: str = ""
    output: str = Field(default="", max_length=MAX_CAPTURED_CHARS)  # what it answered (WAGI)
    output_truncated: bool = False


class CapturedOutput(Record):
    """What one checked run printed (the CLI mode's stdout), as the lab's submission shows it:
    the first measured run of the runtime whose output passed the lab's checks."""

    runtime: RuntimeName
    mode: Literal["cli"] = "cli"
    round: int = Field(ge=0)
    text: str = Field(max_length=MAX_CAPTURED_CHARS)
    truncated: bool = False


def bounded(text: str) -> tuple[str, bool]:
    """text cut to what a measurement file keeps of an output, and whether it was cut."""
    return text[:MAX_CAPTURED_CHARS], len(text) > MAX_CAPTURED_CHARS


class Measurement(Record):
    schema_name: Literal["labreport.measurement"] = "labreport.measurement"
    schema_version: int
    lab: LabName
    title: str
    partial: bool = False
    partial_reason: str = ""
    resumed_at: list[Timestamp] = Field(
        default_factory=list
    )  # when `measure --resume` continued it
    started_at: Timestamp
    finished_at: Timestamp
    runs: int = Field(ge=1)
    warmup: int = Field(ge=0)
    timeout_s: float = Field(gt=0)
    environment: Environment
    artifacts: list[ArtifactRecord] = Field(default_factory=list)
    # Optional builds this host could not make: build name -> why (e.g. no tinygo on PATH).
    skipped_builds: dict[str, str] = Field(default_factory=dict)
    images: list[ImageRecord] = Field(default_factory=list)
    runtimes: list[RuntimeRecord] = Field(default_factory=list)
    samples: list[Sample] = Field(default_factory=list)
    memory: list[MemoryRecord] = Field(default_factory=list)
    serving: list[ServingRecord] = Field(default_factory=list)
    checks: list[CheckRecord] = Field(default_factory=list)
    # The CLI mode's environment ([once] env), as the report names the mode (older files: none).
    cli_env: dict[str, str] = Field(default_factory=dict)
    cli_args: list[str] = Field(default_factory=list, max_length=64)  # after the program's name
    # The modes the lab declared (older files: all three, as every lab then had).
    modes: list[Mode] = Field(default_factory=lambda: list(ALL_MODES))
    # One checked output per runtime; outputs_kept is False in files measured before they were.
    outputs_kept: bool = False
    outputs: list[CapturedOutput] = Field(default_factory=list)
    commands: list[str] = Field(default_factory=list)
