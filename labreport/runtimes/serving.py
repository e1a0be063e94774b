"""Serving, the same way on every runtime: the environment that makes a service listen, waiting
for it to answer, the one procedure that measures a started service (or says why it did not
serve), the verdict on a WAGI (CGI) run, and the server-mode check beside a memory record."""

from __future__ import annotations

import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from labreport.config import LabConfig
from labreport.host import proc
from labreport.record.checks import check_cgi
from labreport.record.models import (
    MAX_CAPTURED_CHARS,
    CheckRecord,
    MemoryRecord,
    ServingRecord,
    bounded,
)
from labreport.runtimes.base import RunContext, RuntimeBase, Scope, Served
from labreport.runtimes.load import CLIENT
from labreport.runtimes.memory import Meter, Service, measure_service, proc_status_bytes

SERVER_STARTUP_S = 15.0  # how long a container's server may take to answer its first request
# Asks labreport's wasmtime shims to serve the module by WAGI on this ADDR:PORT (shim/src/wagi.rs);
# the shim keeps it from the guest.
WAGI_LISTEN_ENV = "LABREPORT_WAGI_LISTEN"
WAGI_SERVICE = "a fresh instance of the module per request (WAGI, in the shim)"
EMBEDDED_WAGI_SERVICE = (
    "a fresh instance of the precompiled module per request (WAGI, embedded wasmtime in "
    "labreport's CGI server)"
)
CGI_SERVICE = "a new process of the binary per request (CGI, fork/exec by labreport's CGI server)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_serving(
    url: str, timeout_s: float, alive: Callable[[], bool], started_ns: int
) -> tuple[int, str]:
    """Poll url until it answers (any status); stop early when the server died. Returns how
    long after started_ns (perf_counter) it first answered, and that answer's body ('' for an
    error status: the load will say)."""
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("the server exited before it answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body = response.read(MAX_CAPTURED_CHARS * 4)
                return time.perf_counter_ns() - started_ns, body.decode("utf-8", "replace")
        except urllib.error.HTTPError as error:  # it answered, if not well: the load will say
            error.close()
            return time.perf_counter_ns() - started_ns, ""
        except OSError as error:
            last_error = str(error)
        time.sleep(0.01)
    raise TimeoutError(f"{url} did not answer within {timeout_s:g} s ({last_error})")


def wagi_check(
    ctx: RunContext, runtime: str, stdout: str, exit_code: int | None, command: str
) -> CheckRecord:
    """The verdict on one WAGI run: it must exit 0 and write the CGI response the config asks."""
    if exit_code != 0:
        ok, detail = False, f"exit {exit_code}"
    else:
        verdict = check_cgi(stdout, ctx.config.wagi_mode(), ctx.config.check, time.time())
        ok, detail = verdict.ok, verdict.reason
    output, cut = bounded(stdout)
    return CheckRecord(
        name="wagi", runtime=runtime, ok=ok, detail=detail, command=command, output=output,
        output_truncated=cut,
    )  # fmt: skip


@dataclass(frozen=True)
class ServiceOutcome:
    """What measuring one service gave: its memory record, its serving record and the check."""

    memory: MemoryRecord
    serving: ServingRecord
    check: CheckRecord


def program_server_env(ctx: RunContext, port: int) -> tuple[dict[str, str], str]:
    """The environment that makes the lab's program serve on port (PORT), and how, in words."""
    return {**ctx.config.served().env, "PORT": str(port)}, "the program's own server"


def wagi_env(port: int) -> tuple[dict[str, str], str]:
    """The environment that makes a wasmtime shim serve the module by WAGI on a loopback port
    (a WASI preview-1 guest cannot open a socket itself), and how, in words."""
    return {WAGI_LISTEN_ENV: f"127.0.0.1:{port}"}, WAGI_SERVICE


def not_serving(runtime: str, method: str, service: Service, reason: str) -> ServiceOutcome:
    """A service that never answered: no figures, and a failed check saying why."""
    failure = f"did not serve: {reason}"
    return ServiceOutcome(
        MemoryRecord(runtime=runtime, method=method, readings=[], failure=failure),
        ServingRecord(
            runtime=runtime, model=service.model, description=service.description,
            command=service.command, client=CLIENT, failure=failure,
        ),
        CheckRecord(
            name="server-mode", runtime=runtime, ok=False, detail=reason, command=service.command
        ),
    )  # fmt: skip


def _outcome(records: tuple[MemoryRecord, ServingRecord], first: str) -> ServiceOutcome:
    """The service's records and its check, which keeps the first answer's body."""
    memory, serving = records
    output, cut = bounded(first)
    return ServiceOutcome(
        memory,
        serving,
        CheckRecord(
            name="server-mode",
            runtime=memory.runtime,
            ok=memory.requests_ok > 0 and memory.requests_ok == memory.requests_sent,
            detail=(
                f"{serving.description}: {memory.requests_ok}/{memory.requests_sent} checked "
                "responses passed"
            ),
            command=serving.command,
            output=output,
            output_truncated=cut,
        ),
    )


def measure_started(
    ctx: RunContext,
    runtime: str,
    service: Service,
    usage_method: str,
    started_ns: int,
    *,
    url: Callable[[], str],
    alive: Callable[[], bool],
    why_not: Callable[[BaseException], str],
    meter: Callable[[], Meter],
    startup_s: float = SERVER_STARTUP_S,
) -> ServiceOutcome:
    """A service just started (at started_ns, perf_counter): waited for until it answers at
    url(), then measured by the procedure every runtime shares; if it never answers, why not
    (why_not, as observed before anything is stopped). The caller stops it after."""
    try:
        address = url()
        ready, first = wait_until_serving(address, startup_s, alive, started_ns)
    except (RuntimeError, TimeoutError, LookupError, TypeError) as error:
        return not_serving(runtime, usage_method, service, why_not(error))
    return _outcome(measure_service(ctx, runtime, address, service, ready, meter()), first)


def serves_wagi(config: LabConfig) -> bool:
    """WAGI is served under load when the lab declares it and [server], which sets the load."""
    return config.server is not None and config.wagi is not None


class ContainerServing(RuntimeBase):
    """What a container runtime (ctr, Docker) measures after the rounds, in one order: its
    service (when the scope asks for serving), one CLI run's cgroup peak (memory), its own
    checks. A runtime supplies the three parts."""

    def serve(self, ctx: RunContext, scope: Scope) -> Served:
        services = [self.service(ctx)] if scope.serving and self.mode_declared(ctx) else []
        once = [self.once_memory(ctx)] if scope.memory else []
        checks = self.own_checks(ctx)
        return Served(
            memory=[*once, *(outcome.memory for outcome in services)] if scope.memory else [],
            serving=[outcome.serving for outcome in services],
            checks=[*checks, *(outcome.check for outcome in services)],
            details=self.details(),
        )

    def mode_declared(self, ctx: RunContext) -> bool:
        """Whether the lab declares the mode this runtime serves in (the program's own server)."""
        return ctx.config.server is not None

    def service(self, ctx: RunContext) -> ServiceOutcome:
        """The runtime's service, started, measured and stopped; the outcome, whatever it is."""
        raise NotImplementedError

    def once_memory(self, ctx: RunContext) -> MemoryRecord:
        """The peak of one checked CLI run."""
        raise NotImplementedError

    def own_checks(self, ctx: RunContext) -> list[CheckRecord]:
        """Functional checks beyond the timed runs and the service's (WAGI)."""
        return []


RSS_METHOD = "resident set size of the serving process (/proc/PID/status VmRSS)"
RSS_PEAK_METHOD = "peak resident set size of the serving process (/proc/PID/status VmHWM)"


def process_service(
    ctx: RunContext,
    runtime: str,
    argv: list[str],
    port: int,
    service: Service,
    env: dict[str, str] | None = None,
) -> ServiceOutcome:
    """A host process that serves on port: started, measured (its RSS), stopped."""
    started = time.perf_counter_ns()
    with proc.background(argv, env=env) as server:

        def why_not(error: BaseException) -> str:
            exited = server.poll() is not None and server.stderr is not None
            stderr = server.stderr.read().decode("utf-8", "replace") if exited else ""  # type: ignore[union-attr]
            return f"{error}: {proc.tail(stderr, 300)}" if stderr else str(error)

        pid = server.pid
        return measure_started(
            ctx, runtime, service, RSS_METHOD, started,
            url=lambda: f"http://127.0.0.1:{port}{ctx.config.served().path}",
            alive=lambda: server.poll() is None,
            why_not=why_not,
            meter=lambda: Meter(
                lambda: proc_status_bytes(pid, "VmRSS"),
                lambda: proc_status_bytes(pid, "VmHWM"),
                RSS_METHOD,
                RSS_PEAK_METHOD,
                pid,
            ),
            startup_s=ctx.timeout_s,
        )  # fmt: skip


def cgi_server_argv(port: int, *program: str) -> list[str]:
    """labreport's CGI server (cgi_server.py) for one program, as a process of its own."""
    listen = f"127.0.0.1:{port}"
    return [sys.executable, "-m", "labreport.runtimes.cgi_server", "--listen", listen, *program]
