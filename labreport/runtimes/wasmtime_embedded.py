"""The WASI module run by wasmtime embedded in this process (PyPI `wasmtime`): the WASM floor.

The module is compiled once per measurement (that time is recorded on its own), serialized to
a cache keyed by the module's sha256 and the wasmtime version, and every sample instantiates
the cached module in a fresh store with the run's WASI environment. No process, no container:
what remains is instantiation and the program itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path

from labreport.config import LabConfig
from labreport.errors import LabreportError
from labreport.host import fsutil, paths, proc
from labreport.host.endpoints import Endpoints
from labreport.record.models import CheckRecord, Detail, MemoryRecord
from labreport.runtimes.base import (
    RawRun,
    Requirements,
    RunContext,
    RuntimeBase,
    Scope,
    Served,
    Spec,
)
from labreport.runtimes.memory import Service
from labreport.runtimes.serving import (
    EMBEDDED_WAGI_SERVICE,
    ServiceOutcome,
    cgi_server_argv,
    free_port,
    process_service,
    wagi_check,
)

SERVER_TRY_S = 5.0
LINEAR_MEMORY_METHOD = (
    "the instance's exported linear memory at exit (Memory.data_len), after one checked run"
)


def wasmtime_version() -> str | None:
    try:
        return metadata.version("wasmtime")
    except metadata.PackageNotFoundError:
        return None


class WasmtimeEmbeddedRuntime(RuntimeBase):
    name = "wasmtime-embedded"
    spec = Spec(
        "wasmtime (PyPI) in-process: precompiled module, fresh instance per run",
        frozenset({"wasm-module"}),
        Requirements(client_host=True),
    )

    def __init__(self) -> None:
        self.ctx: RunContext | None = None
        self.module_path: Path | None = None
        self.facts: dict[str, Detail] = {}
        self.scratch: tempfile.TemporaryDirectory[str] | None = None
        self.cache_path: Path | None = None

    def available(self, endpoints: Endpoints) -> tuple[bool, str]:
        if wasmtime_version() is None:
            return (
                False,
                "the wasmtime Python package is not installed (a dependency of labreport: "
                "reinstall it)",
            )
        return True, ""

    def command(self, env: Mapping[str, str]) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in env.items())
        name = self.module_path.name if self.module_path else "module.wasm"
        args = list(self.ctx.config.once.args) if self.ctx is not None else []
        argv = f"argv: {[name, *args]}, " if args else ""
        return (
            f"python: wasmtime.Module.deserialize_file(<cache of {name}>); "
            f"Linker.define_wasi(); WasiConfig({argv}env: {shown}); instantiate; call _start"
        )

    def _module_build(self, config: LabConfig) -> str:
        """The build whose module this runtime runs: the one in the wasm image."""
        return config.wasm_image.build

    def setup(self, ctx: RunContext) -> None:
        # wasmtime is imported where it runs, not at the top: loading its native library adds
        # 50-90 ms (measured here) to every command, and only this runtime uses it.
        import wasmtime

        self.ctx = ctx
        self.module_path = ctx.built.files[self._module_build(ctx.config)]
        module_bytes = self.module_path.read_bytes()
        version = wasmtime_version() or "unknown"
        config = wasmtime.Config()
        config.epoch_interruption = True  # so a hung run can be stopped after the timeout
        self.engine = wasmtime.Engine(config)
        started = time.perf_counter()
        compiled = wasmtime.Module(self.engine, module_bytes)
        compile_s = time.perf_counter() - started
        key = hashlib.sha256(module_bytes).hexdigest()[:32]
        cache = paths.state_dir() / "wasmtime-cache" / f"{key}-wasmtime{version}.cwasm"
        hit = cache.is_file()
        if not hit:
            cache.parent.mkdir(parents=True, exist_ok=True)
            fsutil.atomic_write_bytes(cache, bytes(compiled.serialize()))
        started = time.perf_counter()
        try:
            self.module = wasmtime.Module.deserialize_file(self.engine, str(cache))
        except wasmtime.WasmtimeError:
            # A cache from another build of the same version: recompile and replace it.
            fsutil.atomic_write_bytes(cache, bytes(compiled.serialize()))
            self.module = wasmtime.Module.deserialize_file(self.engine, str(cache))
        self.cache_path = cache
        self.facts = {
            "wasmtime_version": version,
            "compile_seconds": round(compile_s, 3),
            "load_cached_seconds": round(time.perf_counter() - started, 4),
            "cache_hit": hit,
            "compiled_bytes": cache.stat().st_size,
            "module_compilation": "once per measurement, outside the timed runs (cached)",
        }
        self.scratch = tempfile.TemporaryDirectory(dir=paths.state_dir(), prefix="wasmtime-")

    @contextlib.contextmanager
    def _deadline(self, timeout_s: float) -> Iterator[None]:
        timer = threading.Timer(timeout_s, self.engine.increment_epoch)
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def _run(
        self, env: Mapping[str, str], timeout_s: float | None = None, cli: bool = False
    ) -> tuple[RawRun, int | None]:
        """One instance run to its end; cli: the CLI mode's, with its arguments."""
        import wasmtime  # where it runs: see prepare()

        assert self.ctx is not None and self.scratch is not None
        out = Path(self.scratch.name, "stdout")
        err = Path(self.scratch.name, "stderr")
        started = time.perf_counter_ns()
        store = wasmtime.Store(self.engine)
        store.set_epoch_deadline(1)
        wasi = wasmtime.WasiConfig()
        args = list(self.ctx.config.once.args) if cli else []
        wasi.argv = [self.module_path.name if self.module_path else "module.wasm", *args]
        wasi.env = list(env.items())
        wasi.stdout_file = str(out)
        wasi.stderr_file = str(err)
        store.set_wasi(wasi)
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        exit_code = 0
        timeout_s = timeout_s or self.ctx.timeout_s
        with self._deadline(timeout_s):
            instance = linker.instantiate(store, self.module)
            start = instance.exports(store)["_start"]
            assert isinstance(start, wasmtime.Func)
            try:
                start(store)
            except wasmtime.ExitTrap as trap:
                exit_code = trap.code
            except wasmtime.Trap as trap:
                if trap.trap_code == wasmtime.TrapCode.INTERRUPT:
                    raise LabreportError(
                        f"the module did not finish within {timeout_s:g} s and was interrupted",
                        "raise --timeout",
                    ) from trap
                exit_code = 134
                err.write_text(str(trap))
        wall_ns = time.perf_counter_ns() - started
        memory = instance.exports(store).get("memory")
        linear = memory.data_len(store) if isinstance(memory, wasmtime.Memory) else None
        run = RawRun(
            out.read_text("utf-8", "replace"),
            wall_ns,
            exit_code,
            stderr=err.read_text("utf-8", "replace"),
        )
        return run, linear

    def run_once(self, env: Mapping[str, str]) -> RawRun:
        run, _ = self._run(env, cli=True)
        return run

    def serve(self, ctx: RunContext, scope: Scope) -> Served:
        """The module's linear memory after one CLI run; WAGI in labreport's CGI server (a fresh
        instance per request); the WAGI check and the program's own server, tried."""
        config = ctx.config
        once = [self._once_memory(ctx)] if scope.memory else []
        served = scope.serving and config.server is not None and config.wagi is not None
        service = [self._wagi_service(ctx)] if served else []
        checks = [
            *([self._wagi_check(ctx)] if config.wagi is not None else []),
            *(s.check for s in service),
            *([self._own_server_check(ctx)] if config.server is not None else []),
        ]
        return Served(
            memory=[*once, *(s.memory for s in service)] if scope.memory else [],
            serving=[s.serving for s in service],
            checks=checks,
            details=dict(self.facts),
        )

    def _once_memory(self, ctx: RunContext) -> MemoryRecord:
        run, linear = self._run(ctx.config.once.env, cli=True)
        failure = "" if run.exit_code == 0 else f"exit {run.exit_code}: {run.stderr[-200:]}"
        return MemoryRecord(
            runtime=self.name,
            mode="once",
            method=LINEAR_MEMORY_METHOD,
            readings=[],
            linear_memory_bytes=linear if not failure else None,
            failure=failure,
        )

    def _wagi_service(self, ctx: RunContext) -> ServiceOutcome:
        assert self.cache_path is not None and self.module_path is not None
        port = free_port()
        program = ["--wasm", str(self.cache_path), "--name", self.module_path.name]
        shown = f"python -m labreport.runtimes.cgi_server --wasm <cache of {self.module_path.name}>"
        service = Service("wagi", EMBEDDED_WAGI_SERVICE, shown)
        return process_service(ctx, self.name, cgi_server_argv(port, *program), port, service)

    def _wagi_check(self, ctx: RunContext) -> CheckRecord:
        wagi_run, _ = self._run(ctx.config.wagi_mode().env)
        env = " ".join(f"{k}={v}" for k, v in ctx.config.wagi_mode().env.items())
        return wagi_check(
            ctx, self.name, wagi_run.stdout, wagi_run.exit_code,
            f"module run with CGI environment {env}",
        )  # fmt: skip

    def _own_server_check(self, ctx: RunContext) -> CheckRecord:
        """The program's own server under WASI preview 1, tried for real: does the port ever
        answer? (Preview 1 has no socket creation; wasmtime-py preopens no socket.)

        The module runs for at most SERVER_TRY_S while another thread knocks on its port.
        """
        port = free_port()
        env = {**ctx.config.served().env, "PORT": str(port)}
        url = f"http://127.0.0.1:{port}{ctx.config.served().path}"
        answered: list[str] = []
        stop = threading.Event()

        def knock() -> None:
            while not stop.is_set() and not answered:
                with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as reply:
                    answered.append(f"HTTP {reply.status}")
                stop.wait(0.2)

        knocker = threading.Thread(target=knock, daemon=True)
        knocker.start()
        try:
            run, _ = self._run(env, timeout_s=SERVER_TRY_S)
            outcome = f"exited {run.exit_code}: {proc.tail(run.stderr, 300) or 'no output'}"
        except LabreportError:
            outcome = f"still running after {SERVER_TRY_S:g} s (interrupted)"
        finally:
            stop.set()
            knocker.join(timeout=5)
        reached = (
            f"port {port} answered ({answered[0]})"
            if answered
            else (f"port {port} on the host never answered")
        )
        return CheckRecord(
            name="own-server",
            runtime=self.name,
            ok=bool(answered),
            detail=f"{outcome}; {reached}",
            command=f"module run with {' '.join(f'{k}={v}' for k, v in env.items())}",
        )

    def cleanup(self) -> None:
        if self.scratch is not None:
            self.scratch.cleanup()
            self.scratch = None


class WasmtimeEmbeddedTinygoRuntime(WasmtimeEmbeddedRuntime):
    """The lab's TinyGo build in embedded wasmtime, where tinygo is on PATH; never required."""

    name = "wasmtime-embedded-tinygo"
    spec = Spec(
        "wasmtime (PyPI) in-process, the TinyGo module: precompiled, fresh instance per run",
        frozenset({"wasm-module"}),
        Requirements(client_host=True),
    )

    def available(self, endpoints: Endpoints) -> tuple[bool, str]:
        if paths.which("tinygo") is None:
            return False, "tinygo is not on PATH (TinyGo is optional: put it on PATH to add it)"
        return super().available(endpoints)

    def unusable(self, ctx: RunContext) -> str:
        names = _tinygo_builds(ctx.config)
        if not names:
            return 'the lab config has no build with toolchain = "tinygo"'
        if names[0] not in ctx.built.files:
            return ctx.built.skipped.get(names[0], f"build {names[0]} was not made")
        return ""

    def _module_build(self, config: LabConfig) -> str:
        return _tinygo_builds(config)[0]


def _tinygo_builds(config: LabConfig) -> list[str]:
    return [name for name, spec in config.builds.items() if spec.toolchain == "tinygo"]
