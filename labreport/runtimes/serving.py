"""Serving, the same way on every runtime: waiting for a server to answer, the verdict on a WAGI
(CGI) run, and the server-mode check that goes with a memory record."""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable

from labreport.record.checks import check_cgi
from labreport.record.models import CheckRecord, MemoryRecord
from labreport.runtimes.base import RunContext

SERVER_STARTUP_S = 15.0  # how long a container's server may take to answer its first request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


def wagi_check(
    ctx: RunContext, runtime: str, stdout: str, exit_code: int | None, command: str
) -> CheckRecord:
    """The verdict on one WAGI run: it must exit 0 and write the CGI response the config asks."""
    if exit_code != 0:
        ok, detail = False, f"exit {exit_code}"
    else:
        verdict = check_cgi(stdout, ctx.config.wagi, ctx.config.check, time.time())
        ok, detail = verdict.ok, verdict.reason
    return CheckRecord(name="wagi", runtime=runtime, ok=ok, detail=detail, command=command)


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
