"""A runtime is a small protocol: available(), prepare(), run_once(), serve(), cleanup(); what it
is and needs of the host is a typed value (Spec), known before anything is built.

Adding a runtime means one new module and one line in REGISTRY (see registry.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import docker

from labreport.build.plan import Built
from labreport.config import LabConfig
from labreport.host import engine
from labreport.host.endpoints import Endpoints
from labreport.record.models import (
    CheckRecord,
    Detail,
    MemoryRecord,
    ServingRecord,
    ShimPhase,
    ShimRecord,
)


@dataclass(frozen=True)
class Requirements:
    """What a runtime needs of the host, read before the run starts anything."""

    # Runs on the client's own host (a process, ctr, embedded wasmtime), not through the
    # engine: with a remote engine as the target it is "not on this target".
    client_host: bool = False
    # Runs through ctr on a containerd: the engine's own (whose socket labreport knows only for
    # the host's engine, its private engine, or LABREPORT_CONTAINERD_SOCKET), else a private one.
    containerd: bool = False
    # Needs an engine with the containerd image store: the private engine where the host's lacks it.
    containerd_store: bool = False


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
class RunContext:
    """What every runtime of one measurement run shares: the lab, the run, the engine and the
    containerd in use, and what the builds made."""

    config: LabConfig
    run_id: str
    timeout_s: float
    endpoints: Endpoints
    built: Built = field(default_factory=Built)
    labels: dict[str, str] = field(default_factory=dict)
    _docker: docker.DockerClient | None = None

    def docker(self) -> docker.DockerClient:
        if self._docker is None:
            self._docker = engine.connect(url=self.endpoints.engine.url)
        return self._docker

    def sweep_containers(self) -> None:
        """Remove the run's labelled containers; safe on every path out, Ctrl-C too."""
        if self._docker is None:
            return
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


@dataclass(frozen=True)
class Spec:
    """What a runtime is and needs, known before anything is built."""

    description: str
    needs: frozenset[str]  # built artifacts it runs: "native", "image", "wasm-image", ...
    requires: Requirements = Requirements()


@dataclass(frozen=True)
class Prepared:
    """What prepare() gives back: the exact command of one CLI run, as a user would type it; or,
    found after the builds, why the runtime cannot run after all (then nothing was prepared)."""

    command: str = ""
    unusable: str = ""


@dataclass(frozen=True)
class Scope:
    """What serve() measures beside the checks: memory (a CLI run's peak, a service's idle and
    under load) and serving (a service under load); each is left out when false."""

    memory: bool = True
    serving: bool = True


@dataclass(frozen=True)
class Served:
    """Everything a runtime measures after the timed rounds, as one value: memory, serving, the
    functional checks (WAGI, server mode) and the facts found while running."""

    memory: list[MemoryRecord] = field(default_factory=list)
    serving: list[ServingRecord] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)
    details: dict[str, Detail] = field(default_factory=dict)


class Runtime(Protocol):
    """One way of running the lab's program. The life of one in a run: available() before the
    builds; prepare() after them; run_once() for every timed start; serve() once after the
    rounds; cleanup() on every way out. Each call gets what it needs as arguments or from
    prepare(); no call depends on another having run before it, but prepare."""

    name: str
    spec: Spec

    def available(self, endpoints: Endpoints) -> tuple[bool, str]:
        """Can it run here, on this engine and containerd ("" reason when it can)?"""
        ...

    def prepare(self, ctx: RunContext) -> Prepared: ...

    def run_once(self, env: Mapping[str, str]) -> RawRun: ...

    def serve(self, ctx: RunContext, scope: Scope) -> Served: ...

    def cleanup(self) -> None: ...


class RuntimeBase:
    """Defaults for a runtime: prepare() asks unusable() first, then runs setup(); a runtime
    overrides what it has."""

    name = ""
    spec = Spec("", frozenset())

    def available(self, endpoints: Endpoints) -> tuple[bool, str]:
        return True, ""

    def unusable(self, ctx: RunContext) -> str:
        """After the builds: why this runtime cannot run after all ("" when it can)."""
        return ""

    def setup(self, ctx: RunContext) -> None:
        """What must be in place before the first run (images imported, modules compiled)."""

    def command(self, env: Mapping[str, str]) -> str:
        """The exact command a user would type for one run."""
        raise NotImplementedError

    def prepare(self, ctx: RunContext) -> Prepared:
        reason = self.unusable(ctx)
        if reason:
            return Prepared(unusable=reason)
        self.setup(ctx)
        return Prepared(command=self.command(ctx.config.once.env))

    def details(self) -> dict[str, Detail]:
        """Facts found while running (compile path, compile time), for the measurement file."""
        return {}

    def serve(self, ctx: RunContext, scope: Scope) -> Served:
        return Served(details=self.details())

    def cleanup(self) -> None:
        pass
