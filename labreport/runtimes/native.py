"""The program as a plain host process: the floor for the traditional path."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from labreport.host import proc
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
    CGI_SERVICE,
    cgi_server_argv,
    free_port,
    process_service,
    program_server_env,
)


class NativeRuntime(RuntimeBase):
    name = "native"
    spec = Spec(
        "host process (no container)", frozenset({"native"}), Requirements(client_host=True)
    )

    def __init__(self) -> None:
        self.binary: Path | None = None
        self.timeout_s = 60.0
        self.args: list[str] = []  # the CLI mode's arguments

    def command(self, env: Mapping[str, str]) -> str:
        shown = " ".join(f"{key}={shlex.quote(value)}" for key, value in env.items())
        program = shlex.join([f"./{self.binary.name if self.binary else 'binary'}", *self.args])
        return f"env -i {shown} {program}"

    def setup(self, ctx: RunContext) -> None:
        self.binary = ctx.built.files[ctx.config.image.build]
        self.timeout_s = ctx.timeout_s
        self.args = list(ctx.config.once.args)

    def run_argv(self, env: Mapping[str, str], name: str = "") -> list[str]:
        """The program with the CLI mode's arguments; the environment is passed as it is."""
        assert self.binary is not None
        return [str(self.binary), *self.args]

    def run_once(self, env: Mapping[str, str]) -> RawRun:
        assert self.binary is not None
        done = proc.timed(
            self.run_argv(env),
            env=dict(env),
            timeout_s=self.timeout_s,
            what=f"{self.binary.name} (native)",
        )
        return RawRun(done.stdout, done.wall_ns, done.returncode, stderr=done.stderr)

    def serve(self, ctx: RunContext, scope: Scope) -> Served:
        """The program's own server, then the same binary as CGI (a process per request). The
        CGI server's own memory is Python's, not the program's: not a memory figure."""
        if not scope.serving or ctx.config.server is None:
            return Served()  # CGI serves under [server]'s load too
        assert self.binary is not None
        port = free_port()
        env, how = program_server_env(ctx, port)
        server = Service("server", how, self.command(env))
        own = process_service(ctx, self.name, [str(self.binary)], port, server, env)
        port = free_port()
        argv = cgi_server_argv(port, "--exec", str(self.binary))
        cgi = Service(
            "cgi", CGI_SERVICE, f"python -m labreport.runtimes.cgi_server --exec {self.binary.name}"
        )
        by_cgi = [process_service(ctx, self.name, argv, port, cgi)] if ctx.config.wagi else []
        return Served(
            memory=[own.memory] if scope.memory else [],
            serving=[own.serving, *(c.serving for c in by_cgi)],
            checks=[own.check, *(c.check for c in by_cgi)],
        )
