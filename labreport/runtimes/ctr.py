"""Runs through containerd's own client, `ctr run --rm`: runc for the scratch image, the
wasmtime shim for the wasi/wasm image. One client for both, so that the two compare like for like.
"""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import time
from collections.abc import Mapping

from labreport.build import oci
from labreport.errors import LabreportError
from labreport.host import cgroup, proc
from labreport.host.containerd import Ctr, EventLog
from labreport.host.endpoints import Endpoints
from labreport.host.shims import WASMTIME_AOT_SHIM, WASMTIME_SHIM, Shim
from labreport.record.models import CheckRecord, Detail, MemoryRecord, ShimPhase
from labreport.runtimes.base import (
    RawRun,
    Requirements,
    RunContext,
    Spec,
)
from labreport.runtimes.memory import (
    Finished,
    Meter,
    Service,
    checked_peak,
    once_memory,
    once_peak_method,
)
from labreport.runtimes.serving import (
    SERVER_STARTUP_S,
    WAGI_LISTEN_ENV,
    ContainerServing,
    ServiceOutcome,
    free_port,
    measure_started,
    program_server_env,
    serves_wagi,
    wagi_check,
    wagi_env,
)
from labreport.runtimes.shim import ShimStarts

CGROUP_USAGE_METHOD = (
    "task cgroup memory usage minus inactive file cache, read from the cgroup v1 files "
    "(memory.usage_in_bytes - total_inactive_file: the formula docker stats uses)"
)
CGROUP_PEAK_METHOD = "task cgroup peak usage incl. page cache (memory.max_usage_in_bytes)"
ONCE_PEAK_METHOD = once_peak_method("task")


class _CtrBase(ContainerServing):
    REQUIRES = Requirements(client_host=True, containerd=True)
    kind = ""
    artifact = ""  # which built archive to import (the one the spec needs)
    platform = ""
    runtime_name = ""

    def __init__(self) -> None:
        self.ctr: Ctr | None = None
        self.ctx: RunContext | None = None
        self.image = ""
        self.names = itertools.count()
        self.facts: dict[str, Detail] = {}
        self.undo = contextlib.ExitStack()
        self.events: EventLog | None = None

    def available(self, endpoints: Endpoints) -> tuple[bool, str]:
        try:
            ctr = Ctr.find(endpoints.containerd)
            ctr.version()
        except LabreportError as error:
            return False, error.message
        return True, ""

    def _run_flags(self) -> list[str]:
        flags = ["--runtime", self.runtime_name]
        if self.platform:
            flags += ["--platform", self.platform]
        return flags

    def run_argv(
        self, env: Mapping[str, str], container_id: str, *extra: str, cli: bool = False
    ) -> list[str]:
        """The `ctr run --rm` command of one run (timed runs, benchmarks, memory and checks);
        cli: the CLI mode's, with its arguments (ctr takes a whole command after the container's
        id, so the image's entrypoint is named first)."""
        assert self.ctr is not None
        flags = self._run_flags() + list(extra)
        for key, value in env.items():
            flags += ["--env", f"{key}={value}"]
        args = self.ctx.config.once.args if cli and self.ctx is not None else []
        command = [self._entrypoint(), *args] if args else []
        return self.ctr.argv("run", "--rm", *flags, self.image, container_id, *command)

    def _entrypoint(self) -> str:
        raise NotImplementedError

    def command(self, env: Mapping[str, str]) -> str:
        return Ctr.shown(self.run_argv(env, f"labreport-RUN-{self.kind}-N", cli=True))

    def _prefix(self) -> str:
        assert self.ctx is not None
        return f"labreport-{self.ctx.run_id}-{self.kind}-"

    def setup(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.ctr = Ctr.find(ctx.endpoints.containerd)
        self.image = f"{self._reference(ctx)}:run-{ctx.run_id}"
        started = time.perf_counter()
        self.ctr.import_archive(
            ctx.built.files[self.artifact], self.platform or "linux/amd64", self._index_name()
        )
        self.facts["import_seconds"] = round(time.perf_counter() - started, 3)
        self.facts["containerd_socket"] = str(self.ctr.socket)
        self.facts["containerd_namespace"] = self.ctr.namespace
        self.facts["image"] = self.image
        self.events = EventLog(self.ctr, self.undo)

    def _reference(self, ctx: RunContext) -> str:
        raise NotImplementedError

    def _index_name(self) -> str | None:
        return self.image

    def run_once(self, env: Mapping[str, str]) -> RawRun:
        assert self.ctx is not None and self.ctr is not None
        container_id = self._prefix() + str(next(self.names))
        done = self._timed(self.run_argv(env, container_id, cli=True), container_id)
        return RawRun(
            done.stdout,
            done.wall_ns,
            done.returncode,
            stderr=done.stderr,
            task_phases=self._task_phases(container_id, done),
        )

    def _task_phases(self, container_id: str, done: proc.Completed) -> list[ShimPhase] | None:
        """containerd's events of this run as phases (None when they did not all arrive)."""
        if self.events is None:
            return None
        phases = self.events.phases(container_id, done.started_ns, done.wall_ns)
        return [ShimPhase(name=name, ns=ns) for name, ns in phases] or None

    def _timed(self, argv: list[str], container_id: str) -> proc.Completed:
        """One timed `ctr run --rm`; its container is removed if the run does not end."""
        assert self.ctx is not None and self.ctr is not None
        try:
            return proc.timed(
                argv,
                timeout_s=self.ctx.timeout_s,
                what=f"ctr run --rm ({self.name})",
                hint="raise --timeout; `labreport doctor` checks containerd and the shim",
            )
        except BaseException:
            with contextlib.suppress(LabreportError):
                self.ctr.remove_container(container_id)
            raise

    def details(self) -> dict[str, Detail]:
        return dict(self.facts)

    def cleanup(self) -> None:
        self.undo.close()  # the event stream
        if self.ctr is None or self.ctx is None:
            return
        self.ctr.sweep(self._prefix(), [self.image])
        self.ctr.remove_namespace_if_empty()

    # -- after the rounds (ContainerServing.serve): memory, serving, checks ------------------

    def _once_peak(self, ctx: RunContext) -> tuple[int | None, str]:
        """One checked CLI run while its task cgroup's peak is polled; (peak, failure)."""
        assert self.ctr is not None
        container_id = self._prefix() + "mem" + str(next(self.names))
        task = cgroup.task_cgroup(self.ctr.namespace, container_id)
        process = proc.spawn(
            self.run_argv(ctx.config.once.env, container_id, cli=True),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

        def run() -> Finished:
            out, err = process.communicate(timeout=ctx.timeout_s)
            return Finished(
                process.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
            )

        try:
            return checked_peak(ctx, task, "task", run)
        finally:
            if process.poll() is None:  # it did not finish: its task is removed too
                with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                    process.kill()
                    process.wait(timeout=10)
                self.ctr.remove_container(container_id)

    def once_memory(self, ctx: RunContext) -> MemoryRecord:
        return once_memory(self.name, ONCE_PEAK_METHOD, lambda: self._once_peak(ctx))

    def service_env(self, ctx: RunContext, port: int) -> tuple[dict[str, str], str]:
        """The environment that makes a container serve on port, and how, in words."""
        return program_server_env(ctx, port)

    def service(self, ctx: RunContext) -> ServiceOutcome:
        """Serving on loopback (host network); the outcome, whatever it is, is recorded."""
        assert self.ctr is not None
        port = free_port()
        env, how = self.service_env(ctx, port)
        container_id = self._prefix() + "server" + str(next(self.names))
        task = cgroup.task_cgroup(self.ctr.namespace, container_id)
        argv = self.run_argv(env, container_id, "--net-host")
        service = Service("wagi" if WAGI_LISTEN_ENV in env else "server", how, Ctr.shown(argv))
        try:
            started = time.perf_counter_ns()
            with proc.background(argv) as server:
                return measure_started(
                    ctx, self.name, service, CGROUP_USAGE_METHOD, started,
                    url=lambda: f"http://127.0.0.1:{port}{ctx.config.served().path}",
                    alive=lambda: server.poll() is None,
                    why_not=lambda _: self._why_not_serving(server, port),
                    meter=lambda: Meter(
                        lambda: cgroup.cgroup_usage_bytes(task),
                        lambda: cgroup.cgroup_peak_bytes(task),
                        CGROUP_USAGE_METHOD,
                        CGROUP_PEAK_METHOD,
                    ),
                )  # fmt: skip
        finally:
            self.ctr.remove_container(container_id)

    def _why_not_serving(self, server: subprocess.Popen[bytes], port: int) -> str:
        """What was observed, before labreport stopped anything: exited on its own, or not."""
        code = server.poll()
        if code is None:
            return (
                f"the task was still running after {SERVER_STARTUP_S:g} s but port {port} on "
                "the host never answered (stopped by labreport)"
            )
        stderr = server.stderr.read().decode("utf-8", "replace") if server.stderr else ""
        return f"the task exited on its own with {code}: {proc.tail(stderr, 300) or 'no output'}"


class CtrRuncRuntime(_CtrBase):
    """The scratch image imported into containerd and run on runc by ctr: the baseline."""

    name = "ctr-runc"
    artifact = "image-archive"
    spec = Spec(
        "ctr run --rm, runtime io.containerd.runc.v2 (same scratch image, docker save)",
        frozenset({artifact}),
        _CtrBase.REQUIRES,
    )
    kind = "runc"
    runtime_name = "io.containerd.runc.v2"

    def _reference(self, ctx: RunContext) -> str:
        return ctx.config.image.repository

    def _entrypoint(self) -> str:
        assert self.ctx is not None
        return self.ctx.config.image.binary_path


class CtrWasmRuntime(_CtrBase):
    """The wasi/wasm image run by containerd on one of labreport's wasmtime shims (runwasi)."""

    artifact = "wasm-image"
    platform = "wasi/wasm"

    def __init__(self, shim: Shim, name: str, description: str, kind: str) -> None:
        super().__init__()
        self.shim = ShimStarts(shim)
        self.name, self.kind = name, kind
        self.spec = Spec(description, frozenset({self.artifact}), self.REQUIRES)
        self.runtime_name = shim.runtime

    def available(self, endpoints: Endpoints) -> tuple[bool, str]:
        missing = self.shim.missing()
        return (False, missing) if missing else super().available(endpoints)

    def _reference(self, ctx: RunContext) -> str:
        return oci.qualified(ctx.config.wasm_image.reference)  # as measure writes it

    def _entrypoint(self) -> str:
        assert self.ctx is not None
        return self.ctx.config.wasm_image.module_path

    def _index_name(self) -> str | None:
        # The OCI layout names the image itself (org.opencontainers.image.ref.name). ctr
        # 1.6.20's --index-name fails on an OCI archive: it unpacks an index it never stored
        # ("content digest ...: not found").
        return None

    def setup(self, ctx: RunContext) -> None:
        super().setup(ctx)
        self.shim.prepare(ctx)

    def command(self, env: Mapping[str, str]) -> str:
        shown = self.run_argv(self.shim.env(env, "TOKEN"), f"labreport-RUN-{self.kind}-N", cli=True)
        return Ctr.shown(shown)

    def service_env(self, ctx: RunContext, port: int) -> tuple[dict[str, str], str]:
        """WAGI in the shim: it listens (in the host's network, --net-host) and runs the module
        afresh for every request."""
        return wagi_env(port)

    def run_once(self, env: Mapping[str, str]) -> RawRun:
        """A timed start that also reads the shim's own timeline of it."""
        assert self.ctx is not None and self.ctr is not None
        container_id = self._prefix() + str(next(self.names))
        done, record = self.shim.start(
            env,
            container_id,
            lambda run_env: self._timed(
                self.run_argv(run_env, container_id, cli=True), container_id
            ),
        )
        return RawRun(
            done.stdout,
            done.wall_ns,
            done.returncode,
            stderr=done.stderr,
            shim=record,
            task_phases=self._task_phases(container_id, done),
        )

    def details(self) -> dict[str, Detail]:
        return {**super().details(), **self.shim.details()}

    def cleanup(self) -> None:
        try:
            super().cleanup()
        finally:
            if self.ctx is not None:
                self.shim.cleanup(self._prefix())

    def mode_declared(self, ctx: RunContext) -> bool:
        return serves_wagi(ctx.config)

    def own_checks(self, ctx: RunContext) -> list[CheckRecord]:
        """The WAGI check: one run with the lab's WAGI environment, its CGI response checked."""
        if ctx.config.wagi is None:
            return []  # the lab has no WAGI mode
        assert self.ctr is not None
        container_id = self._prefix() + "wagi" + str(next(self.names))
        argv = self.run_argv(ctx.config.wagi_mode().env, container_id)
        try:
            done = proc.run(argv, timeout_s=ctx.timeout_s, check=False, what="ctr run (WAGI)")
        finally:
            self.ctr.remove_container(container_id)
        return [wagi_check(ctx, self.name, done.stdout, done.returncode, Ctr.shown(argv))]


def ctr_wasmtime() -> CtrWasmRuntime:
    """The shim that compiles the module at every start."""
    return CtrWasmRuntime(
        WASMTIME_SHIM,
        "ctr-wasmtime",
        "ctr run --rm, runtime io.containerd.wasmtime.v1 (runwasi wasmtime shim)",
        "wasm",
    )


def ctr_wasmtime_aot() -> CtrWasmRuntime:
    """The same image on the shim that keeps compiled modules in its file cache.

    The module's entry is removed before this runtime's first start, which therefore compiles
    and stores (it is the first warm-up sample; its shim record says "miss"); every later start
    maps the stored code (records say "hit").
    """
    return CtrWasmRuntime(
        WASMTIME_AOT_SHIM,
        "ctr-wasmtime-aot",
        "ctr run --rm, runtime io.containerd.wasmtime-aot.v1 (the same shim; it compiles a module "
        "at its first start, stores the code in a file keyed by the module's sha256 and the "
        "engine, and maps it at later starts)",
        "aot",
    )
