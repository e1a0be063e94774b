"""Memory and serving, one procedure for every runtime: a service idle and under a bounded,
checked load at several concurrencies, and the peak of one CLI run's cgroup; only the way a
figure is read differs."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from labreport.host import proc
from labreport.host.cgroup import cgroup_peak_bytes
from labreport.record.checks import check_output
from labreport.record.models import MemoryRecord, ServingLevel, ServingRecord, ToolLevel
from labreport.runtimes.base import RunContext
from labreport.runtimes.hey import LoadTool, find_tool
from labreport.runtimes.load import CLIENT, Client

POLL_S = 0.002
LOAD_SAMPLE_S = 0.1  # memory is read this often while a load level runs
ONCE_MEMORY_RUNS = 3


def once_peak_method(cgroup: str) -> str:
    """The method of a CLI run's peak, in words; cgroup names whose (task or container)."""
    return (
        f"{cgroup} cgroup peak usage incl. page cache (memory.max_usage_in_bytes), polled every "
        f"{POLL_S * 1000:g} ms while one CLI run lives; the largest of "
        f"{ONCE_MEMORY_RUNS} runs"
    )


def poll_cgroup_peak(cgroup: Path, running: Callable[[], bool], deadline: float) -> int | None:
    """The cgroup's peak as last read while running() holds; None if it was never readable."""
    peak = None
    while running() and time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            peak = cgroup_peak_bytes(cgroup)
        time.sleep(POLL_S)
    return peak


@dataclass(frozen=True)
class Finished:
    """How one CLI run ended."""

    exit_code: int | None
    stdout: str
    stderr: str


def checked_peak(
    ctx: RunContext, cgroup: Path, whose: str, run: Callable[[], Finished]
) -> tuple[int | None, str]:
    """One CLI run, done whole by run() (with its own timeout) on a thread of its own while its
    cgroup's peak is polled, and its output checked; (peak, failure). The one procedure of the
    ctr and Docker runtimes: the caller starts nothing before, and removes its task after."""
    outcome: dict[str, Any] = {}

    def run_and_keep() -> None:
        try:
            outcome["finished"] = run()
        except Exception as error:  # reported below as the run's failure
            outcome["error"] = error

    runner = threading.Thread(target=run_and_keep, daemon=True)
    runner.start()
    # The run has its own timeout; the deadline is a backstop.
    peak = poll_cgroup_peak(cgroup, runner.is_alive, time.monotonic() + ctx.timeout_s + 30)
    if "error" in outcome:
        return None, f"the run did not finish: {outcome['error']}"
    finished: Finished | None = outcome.get("finished")
    if finished is None:
        return None, f"the run did not finish within {ctx.timeout_s:g} s"
    verdict = check_output(finished.stdout, ctx.config.check, time.time())
    if finished.exit_code != 0 or not verdict.ok:
        reason = verdict.reason or proc.tail(finished.stderr, 200)
        return None, f"exit {finished.exit_code}: {reason}"
    if peak is None:
        return None, f"the {whose} cgroup ({cgroup}) was never readable while it ran"
    return peak, ""


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


def proc_status_bytes(pid: int, field: str) -> int:
    """VmRSS / VmHWM of a process, from /proc (kB there)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"{field} not in /proc/{pid}/status")


@dataclass(frozen=True)
class Service:
    """A runtime serving the lab's requests: how (the model), in words, and the command."""

    model: Literal["server", "wagi", "cgi"]
    description: str
    command: str


@dataclass(frozen=True)
class Meter:
    """How a runtime reads a service's memory: now, its peak, both in words, and the serving
    process (for its peak RSS, the one method every runtime shares) where there is one."""

    read_bytes: Callable[[], int]
    read_peak: Callable[[], int | None]
    method: str
    peak_method: str
    pid: int | None = None


def measure_service(
    ctx: RunContext, runtime: str, url: str, service: Service, ready_ns: int, meter: Meter
) -> tuple[MemoryRecord, ServingRecord]:
    """A service that answers at url, ready_ns after its start command: its first checked
    request, idle memory, then a checked load at each of the lab's concurrency levels with
    memory read while it runs, then the peak. The same procedure serves every runtime; only
    the way memory is read differs.
    """
    server = ctx.config.served()
    client = Client(url, lambda body: _problem(ctx, body))
    first = client.one()
    readings = []
    clock = time.monotonic()
    idle_end = clock + server.idle_seconds
    while True:
        readings.append(
            {"phase": "idle", "at_s": time.monotonic() - clock, "bytes": meter.read_bytes()}
        )
        if time.monotonic() >= idle_end:
            break
        time.sleep(min(0.25, max(0.0, idle_end - time.monotonic())))
    tool: LoadTool | str = find_tool() if server.load_tool == "hey" else "no load tool (lab config)"
    levels: list[ServingLevel] = []
    tool_levels: list[ToolLevel] = []
    for concurrency in server.concurrency:
        with _sampling(readings, clock, meter.read_bytes):
            levels.append(client.level(concurrency, server.load_requests, server.level_time_s))
            if isinstance(tool, LoadTool) and not first.error:
                tool_levels.append(
                    tool.level(url, concurrency, server.load_requests, server.level_time_s)
                )
    peak = process_peak = None
    with contextlib.suppress(OSError, ValueError):
        peak = meter.read_peak()
    if meter.pid is not None:
        with contextlib.suppress(OSError, ValueError):
            process_peak = proc_status_bytes(meter.pid, "VmHWM")
    sent = 1 + sum(level.requests for level in levels)
    ok = (not first.error) + sum(level.ok for level in levels)
    failure = f"first request: {first.error}" if first.error else _first_error(levels)
    memory = MemoryRecord.model_validate(
        {
            "runtime": runtime,
            "method": meter.method,
            "readings": readings,
            "peak_bytes": peak,
            "peak_method": meter.peak_method if peak else "",
            "process_peak_rss_bytes": process_peak,
            "requests_sent": sent,
            "requests_ok": ok,
            "failure": failure,
        }
    )
    serving = ServingRecord(
        runtime=runtime,
        model=service.model,
        description=service.description,
        command=service.command,
        client=CLIENT,
        ready_ns=ready_ns if not first.error else None,
        first_request_ns=first.latency_ns if not first.error else None,
        levels=levels,
        failure=failure,
        tool=tool.name if isinstance(tool, LoadTool) else "",
        tool_command=tool.command(url) if isinstance(tool, LoadTool) else "",
        tool_levels=tool_levels,
        tool_missing=tool if isinstance(tool, str) else "",
    )
    return memory, serving


def _problem(ctx: RunContext, body: str) -> str:
    verdict = check_output(body, ctx.config.check, time.time())
    return "" if verdict.ok else verdict.reason


def _first_error(levels: list[ServingLevel]) -> str:
    for level in levels:
        if level.errors:
            error, count = next(iter(level.errors.items()))
            return f"at concurrency {level.concurrency}: {count} x {error}"
    return ""


@contextlib.contextmanager
def _sampling(
    readings: list[dict[str, object]], clock: float, read_bytes: Callable[[], int]
) -> Iterator[None]:
    """Reads memory every LOAD_SAMPLE_S on a thread of its own while the block runs, and once
    more as it ends, so that a level shorter than LOAD_SAMPLE_S (a small load on a fast server)
    still has a reading."""
    done = threading.Event()

    def sample() -> None:
        finished = False
        while not finished:
            finished = done.wait(LOAD_SAMPLE_S)
            with contextlib.suppress(OSError, ValueError, LookupError):
                value = read_bytes()
                readings.append({"phase": "load", "at_s": time.monotonic() - clock, "bytes": value})

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join(timeout=10)
