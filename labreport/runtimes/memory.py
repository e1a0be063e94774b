"""Memory, one procedure for every runtime: server mode idle and under a bounded, checked load,
and the peak of one CLI run's cgroup; only the way a figure is read differs."""

from __future__ import annotations

import contextlib
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from labreport.host.cgroup import cgroup_peak_bytes
from labreport.record.checks import check_output
from labreport.record.models import MemoryRecord
from labreport.runtimes.base import RunContext

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


def proc_status_bytes(pid: int, field: str) -> int:
    """VmRSS / VmHWM of a process, from /proc (kB there)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"{field} not in /proc/{pid}/status")


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
