"""A runtime is a small protocol: available(), prepare(), run_once(), cleanup().

Adding a runtime means one new module and one line in REGISTRY (see registry.py).
"""

from __future__ import annotations

import contextlib
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from labreport.config import LabConfig
from labreport.models import CheckRecord, Detail, MemoryRecord, ShimPhase, ShimRecord

if TYPE_CHECKING:
    import docker

    from labreport.proc import Completed


@dataclass(frozen=True)
class RawRun:
    """What one run gave back, before its output is checked."""

    stdout: str
    wall_ns: int
    exit_code: int | None
    engine_run_ns: int | None = None
    stderr: str = ""
    shim: ShimRecord | None = None
    task_phases: list[ShimPhase] | None = None  # containerd's events of the run (ctr)


@dataclass
class Built:
    """Artifacts the builds produced, for runtimes to use."""

    files: dict[str, Path] = field(default_factory=dict)
    image_ids: dict[str, str] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)  # image names, e.g. the wasm image's
    loaded: set[str] = field(default_factory=set)  # images docker-loaded into the engine
    skipped: dict[str, str] = field(default_factory=dict)  # optional build -> why not built


@dataclass
class RunContext:
    """What every runtime of one measurement run shares."""

    config: LabConfig
    run_id: str
    timeout_s: float
    built: Built = field(default_factory=Built)
    labels: dict[str, str] = field(default_factory=dict)
    docker_factory: Callable[[], docker.DockerClient] | None = None
    _docker: docker.DockerClient | None = None

    def docker(self) -> docker.DockerClient:
        if self._docker is None:
            from labreport import engine

            self._docker = (self.docker_factory or engine.connect)()
        return self._docker

    def sweep_containers(self) -> None:
        """Remove the run's labelled containers; safe on every path out, Ctrl-C too."""
        if self._docker is None:
            return
        from labreport import engine

        # The daemon may have gone away: then nothing more can be removed through it.
        with contextlib.suppress(Exception):
            engine.remove_run_containers(self._docker, self.run_id)

    def close(self) -> None:
        if self._docker is None:
            return
        try:
            self.sweep_containers()
        finally:
            self._docker.close()
            self._docker = None


class Runtime(Protocol):
    name: str
    description: str
    # Artifacts the runtime needs built: "native", "image", "image-archive", "wasm-image", ...
    needs: frozenset[str]

    def available(self) -> tuple[bool, str]: ...

    def command(self, env: Mapping[str, str]) -> str:
        """The exact command a user would type for one run."""
        ...

    def usable(self, ctx: RunContext) -> str:
        """After the builds: why this runtime cannot run after all ("" when it can)."""
        ...

    def prepare(self, ctx: RunContext) -> None: ...

    def run_once(self, env: Mapping[str, str]) -> RawRun: ...

    def memory(self, ctx: RunContext) -> list[MemoryRecord]:
        """Server mode idle and under load, and/or one CLI run's peak; [] when not measurable."""
        ...

    def checks(self, ctx: RunContext) -> list[CheckRecord]:
        """Functional checks beyond the timed CLI runs (WAGI, server mode on WASI)."""
        ...

    def details(self) -> dict[str, Detail]:
        """Facts found while running (compile path, compile time), for the measurement file."""
        ...

    def cleanup(self) -> None: ...


class RuntimeBase:
    """Defaults for the optional parts of the protocol; a runtime overrides what it has."""

    # Runs on the client's own host (a process, ctr, embedded wasmtime), not through the engine:
    # with a remote engine as the target it is "not on this target".
    on_client_host = False
    # Needs the engine's own containerd socket (ctr), which labreport knows only for the
    # host's engine, its private engine, or LABREPORT_CONTAINERD_SOCKET.
    needs_engine_containerd = False

    def available(self) -> tuple[bool, str]:
        return True, ""

    def usable(self, ctx: RunContext) -> str:
        return ""

    def memory(self, ctx: RunContext) -> list[MemoryRecord]:
        return []

    def checks(self, ctx: RunContext) -> list[CheckRecord]:
        return []

    def details(self) -> dict[str, Detail]:
        return {}

    def cleanup(self) -> None:
        pass


def wagi_check(
    ctx: RunContext, runtime: str, stdout: str, exit_code: int | None, command: str
) -> CheckRecord:
    """The verdict on one WAGI run: it must exit 0 and write the CGI response the config asks."""
    from labreport.check import check_cgi

    if exit_code != 0:
        ok, detail = False, f"exit {exit_code}"
    else:
        verdict = check_cgi(stdout, ctx.config.wagi, ctx.config.check, time.time())
        ok, detail = verdict.ok, verdict.reason
    return CheckRecord(name="wagi", runtime=runtime, ok=ok, detail=detail, command=command)


def proc_status_bytes(pid: int, field: str) -> int:
    """VmRSS / VmHWM of a process, from /proc (kB there)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"{field} not in /proc/{pid}/status")


def wait_until_serving(url: str, timeout_s: float, alive: Callable[[], bool]) -> None:
    """Poll url until it answers; stop early when the server died."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the server exited before it answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
                return
        except OSError as error:
            last_error = str(error)
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout_s:g} s ({last_error})")


def measure_server_memory(
    ctx: RunContext,
    runtime: str,
    url: str,
    read_bytes: Callable[[], int],
    read_peak: Callable[[], int | None],
    method: str,
    peak_method: str,
    pid: int | None = None,
) -> MemoryRecord:
    """Idle readings, then a bounded load of checked requests on loopback, then the peak.

    The same procedure serves every runtime, so only the way memory is read differs.
    """
    from labreport.check import check_output

    server = ctx.config.server
    readings = []
    started = time.monotonic()
    idle_end = started + server.idle_seconds
    while True:
        readings.append(
            {"phase": "idle", "at_s": time.monotonic() - started, "bytes": read_bytes()}
        )
        if time.monotonic() >= idle_end:
            break
        time.sleep(min(0.25, max(0.0, idle_end - time.monotonic())))
    sent = ok = 0
    failure = ""
    every = max(1, server.load_requests // 10)
    for index in range(server.load_requests):
        sent += 1
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read().decode("utf-8", "replace")
            verdict = check_output(body, ctx.config.check, time.time())
            if verdict.ok:
                ok += 1
            elif not failure:
                failure = f"request {index}: {verdict.reason}"
        except OSError as error:
            if not failure:
                failure = f"request {index}: {error}"
        if (index + 1) % every == 0:
            readings.append(
                {"phase": "load", "at_s": time.monotonic() - started, "bytes": read_bytes()}
            )
    peak = process_peak = None
    with contextlib.suppress(OSError, ValueError):
        peak = read_peak()
    if pid is not None:
        with contextlib.suppress(OSError, ValueError):
            process_peak = proc_status_bytes(pid, "VmHWM")
    return MemoryRecord.model_validate(
        {
            "runtime": runtime,
            "method": method,
            "readings": readings,
            "peak_bytes": peak,
            "peak_method": peak_method if peak else "",
            "process_peak_rss_bytes": process_peak,
            "requests_sent": sent,
            "requests_ok": ok,
            "failure": failure,
        }
    )


# -- memory helpers shared by the ctr and Docker runtimes ---------------------------------------

POLL_S = 0.002
ONCE_MEMORY_RUNS = 3


def once_peak_method(cgroup: str) -> str:
    """The method of a CLI run's peak, in words; cgroup names whose (task or container)."""
    return (
        f"{cgroup} cgroup peak usage incl. page cache (memory.max_usage_in_bytes), polled every "
        f"{POLL_S * 1000:g} ms while one `MODE=once` run lives; the largest of "
        f"{ONCE_MEMORY_RUNS} runs"
    )


def poll_cgroup_peak(cgroup: Path, running: Callable[[], bool], deadline: float) -> int | None:
    """The cgroup's peak as last read while running() holds; None if it was never readable."""
    from labreport.containerd import cgroup_peak_bytes

    peak = None
    while running() and time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            peak = cgroup_peak_bytes(cgroup)
        time.sleep(POLL_S)
    return peak


def once_memory(
    runtime: str, method: str, one_run: Callable[[], tuple[int | None, str]]
) -> MemoryRecord:
    """The largest peak of ONCE_MEMORY_RUNS checked CLI runs; the first failure, if any."""
    peaks: list[int] = []
    failure = ""
    for _ in range(ONCE_MEMORY_RUNS):
        peak, failure_now = one_run()
        if peak is not None:
            peaks.append(peak)
        failure = failure or failure_now
    return MemoryRecord(
        runtime=runtime,
        mode="once",
        method=method,
        readings=[],
        peak_bytes=max(peaks) if peaks else None,
        peak_method=method if peaks else "",
        failure=failure,
    )


def server_not_serving(
    runtime: str, method: str, reason: str, command: str
) -> tuple[MemoryRecord, CheckRecord]:
    """Server mode that never answered: no memory figure, and a failed check saying why."""
    return (
        MemoryRecord(
            runtime=runtime, method=method, readings=[],
            failure=f"server mode did not serve: {reason}",
        ),
        CheckRecord(name="server-mode", runtime=runtime, ok=False, detail=reason, command=command),
    )  # fmt: skip


def server_served(record: MemoryRecord, command: str) -> CheckRecord:
    return CheckRecord(
        name="server-mode",
        runtime=record.runtime,
        ok=record.requests_ok > 0,
        detail=f"served {record.requests_ok}/{record.requests_sent} checked responses",
        command=command,
    )


# -- the wasmtime shims' own timeline and module cache ------------------------------------------


class ShimTimed:
    """Mixed into the runtimes that start the wasmtime shims (through ctr or Docker).

    Every timed start asks the shim for its timeline (LABREPORT_PHASES=<token>, the token being
    the container's name) and reads it back. On the caching shim, the module's cache entry is
    removed before the runtime's first start, so that start really compiles and stores, and
    again at cleanup, so a measurement leaves no entry behind. Both only where the shim runs on
    this host: a remote engine's shim keeps its records and cache on its own host.
    """

    cached = False  # the shim keeps compiled modules in its file cache
    shim_is_local = True
    module_sha256 = ""
    cache_before_first_start = ""

    def _shim_env(self, env: Mapping[str, str], token: str) -> dict[str, str]:
        from labreport import shimcache

        return {**env, shimcache.PHASES_ENV: token}

    def _module_digest(self, ctx: RunContext) -> str:
        import hashlib

        module = ctx.built.files[ctx.config.wasm_image.build]
        return hashlib.sha256(module.read_bytes()).hexdigest()

    def _before_start(self) -> None:
        """Before the runtime's first timed start: an empty cache for this module."""
        if not self.cached or self.cache_before_first_start or not self.shim_is_local:
            return
        from labreport import shimcache

        try:
            removed = shimcache.forget(self.module_sha256)
            self.cache_before_first_start = (
                f"emptied (removed {removed} entr{'y' if removed == 1 else 'ies'})"
                if removed else "empty"
            )  # fmt: skip
        except OSError as error:
            self.cache_before_first_start = f"could not be emptied: {error.strerror}"

    def _shim_record(self, token: str, started_ns: int, wall_ns: int) -> ShimRecord | None:
        if not self.shim_is_local:
            return None
        from labreport import shimcache

        try:
            timeline = shimcache.take_record(token)
        except OSError:
            return None
        if timeline is None:
            return None
        phases = shimcache.phases_ns(timeline, started_ns, wall_ns)
        return ShimRecord(
            shim=timeline.shim,
            phases=[ShimPhase(name=name, ns=ns) for name, ns in phases],
            facts=timeline.facts,
        )

    def _shim_start(
        self, env: Mapping[str, str], token: str, timed: Callable[[dict[str, str]], Completed]
    ) -> tuple[Completed, ShimRecord | None]:
        """One timed start through `timed` (given the run's environment) that asks the shim
        for its record under token, and reads it back; a start that did not end normally
        leaves no record behind."""
        self._before_start()
        try:
            done = timed(self._shim_env(env, token))
        except BaseException:
            self._discard_record(token)
            raise
        return done, self._shim_record(token, done.started_ns, done.wall_ns)

    def _discard_record(self, token: str) -> None:
        """After a start that did not end normally (its task removed): the record it may have
        written before it was removed. Nothing can write it later: the task is gone."""
        from labreport import shimcache

        with contextlib.suppress(OSError, ValueError):
            shimcache.take_record(token)

    def _shim_cleanup(self, token_prefix: str) -> None:
        """The run's leftover records, and (caching shim) the module's entry; records that
        earlier runs, killed before their cleanup, left are removed after an hour."""
        if not self.shim_is_local:
            return
        from labreport import shimcache

        with contextlib.suppress(OSError):
            shimcache.sweep_records(token_prefix)
            shimcache.sweep_records("labreport-", older_than_s=3600)
        if self.cached and self.module_sha256:
            with contextlib.suppress(OSError):
                shimcache.forget(self.module_sha256)

    def _shim_details(self) -> dict[str, Detail]:
        details: dict[str, Detail] = {}
        if self.cached and self.module_sha256:
            details["module_sha256"] = self.module_sha256
        if self.cache_before_first_start:
            details["cache_before_first_start"] = self.cache_before_first_start
        return details
