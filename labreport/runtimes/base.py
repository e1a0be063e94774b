"""A runtime is a small protocol: available(), prepare(), run_once(), cleanup(); what it needs
of the host is a typed value (Requirements), known before anything is built.

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
    endpoints: Endpoints = field(default_factory=Endpoints.from_environment)
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


class Runtime(Protocol):
    name: str
    description: str
    # Artifacts the runtime needs built: "native", "image", "image-archive", "wasm-image", ...
    needs: frozenset[str]
    requires: Requirements

    def available(self, endpoints: Endpoints) -> tuple[bool, str]:
        """Can it run here, on this engine and containerd ("" reason when it can)?"""
        ...

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

    def serving(self) -> list[ServingRecord]:
        """What serving under load gave (memory() serves); [] when it did not serve."""
        ...

    def checks(self, ctx: RunContext) -> list[CheckRecord]:
        """Functional checks beyond the timed CLI runs (WAGI, serving)."""
        ...

    def details(self) -> dict[str, Detail]:
        """Facts found while running (compile path, compile time), for the measurement file."""
        ...

    def cleanup(self) -> None: ...


class RuntimeBase:
    """Defaults for the optional parts of the protocol; a runtime overrides what it has."""

    requires = Requirements()

    def available(self, endpoints: Endpoints) -> tuple[bool, str]:
        return True, ""

    def usable(self, ctx: RunContext) -> str:
        return ""

    def memory(self, ctx: RunContext) -> list[MemoryRecord]:
        return []

    def serving(self) -> list[ServingRecord]:
        return []

    def checks(self, ctx: RunContext) -> list[CheckRecord]:
        return []

    def details(self) -> dict[str, Detail]:
        return {}

    def cleanup(self) -> None:
        pass
