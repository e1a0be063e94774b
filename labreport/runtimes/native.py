"""The program as a plain host process: the floor for the traditional path."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from labreport.host import proc
from labreport.record.models import MemoryRecord
from labreport.runtimes.base import RawRun, Requirements, RunContext, RuntimeBase
from labreport.runtimes.memory import measure_server_memory, proc_status_bytes
from labreport.runtimes.serving import free_port, wait_until_serving


class NativeRuntime(RuntimeBase):
    requires = Requirements(client_host=True)
    name = "native"
    description = "host process (no container)"
    needs = frozenset({"native"})

    def __init__(self) -> None:
        self.binary: Path | None = None
        self.timeout_s = 60.0

    def command(self, env: Mapping[str, str]) -> str:
        shown = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
        return f"env -i {shown} ./{self.binary.name if self.binary else 'binary'}"

    def prepare(self, ctx: RunContext) -> None:
        self.binary = ctx.built.files[ctx.config.image.build]
        self.timeout_s = ctx.timeout_s

    def run_argv(self, env: Mapping[str, str], name: str = "") -> list[str]:
        """The program itself; the environment is passed as it is, nothing else."""
        assert self.binary is not None
        return [str(self.binary)]

    def run_once(self, env: Mapping[str, str]) -> RawRun:
        assert self.binary is not None
        done = proc.timed(
            self.run_argv(env),
            env=dict(env),
            timeout_s=self.timeout_s,
            what=f"{self.binary.name} (native)",
        )
        return RawRun(done.stdout, done.wall_ns, done.returncode, stderr=done.stderr)

    def memory(self, ctx: RunContext) -> list[MemoryRecord]:
        assert self.binary is not None
        port = free_port()
        env = {**ctx.config.server.env, "PORT": str(port)}
        url = f"http://127.0.0.1:{port}{ctx.config.server.path}"
        with proc.background([str(self.binary)], env=env) as server:
            wait_until_serving(url, ctx.timeout_s, lambda: server.poll() is None)
            record = measure_server_memory(
                ctx,
                self.name,
                url,
                read_bytes=lambda: proc_status_bytes(server.pid, "VmRSS"),
                read_peak=lambda: proc_status_bytes(server.pid, "VmHWM"),
                method="resident set size of the server process (/proc/PID/status VmRSS)",
                peak_method="peak resident set size (/proc/PID/status VmHWM)",
                pid=server.pid,
            )
        return [record]
