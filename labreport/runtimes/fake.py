"""A deterministic runtime for fast tests, like hyperfine's mock executor.

Its samples are made up: they exist to test orchestration, statistics and rendering, and a
measurement file made with it says so (runtime name `fake-*`, description "synthetic").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from labreport.errors import LabreportError
from labreport.host.endpoints import Endpoints
from labreport.record.models import MemoryRecord, ServingLevel, ServingRecord
from labreport.runtimes.base import RawRun, RunContext, RuntimeBase, Scope, Served, Spec

SYNTHETIC = Spec("synthetic samples (tests only)", frozenset())


def plain_output(now_unix_s: float) -> str:
    return "fake output\n"


@dataclass
class FakeRuntime(RuntimeBase):
    name: str = "fake"
    spec: Spec = SYNTHETIC
    base_ns: int = 1_000_000
    step_ns: int = 10_000
    bad_output_on: set[int] = field(default_factory=set)
    hang_on: int | None = None
    interrupt_on: int | None = None
    is_available: bool = True
    needs_build: str = ""  # usable only when the builds made this one
    calls: list[str] = field(default_factory=list)
    memory_bytes: int | None = 2_000_000
    runs: int = 0
    # What a run prints, given the time: the tests give the output their lab's rules accept.
    output: Callable[[float], str] = plain_output

    def available(self, endpoints: Endpoints) -> tuple[bool, str]:
        return (True, "") if self.is_available else (False, f"{self.name} is switched off")

    def unusable(self, ctx: RunContext) -> str:
        if self.needs_build and self.needs_build not in ctx.built.files:
            return ctx.built.skipped.get(self.needs_build, "not built")
        return ""

    def command(self, env: Mapping[str, str]) -> str:
        return f"fake-run {self.name} " + " ".join(f"{k}={v}" for k, v in env.items())

    def setup(self, ctx: RunContext) -> None:
        self.calls.append("prepare")

    def run_once(self, env: Mapping[str, str]) -> RawRun:
        index = self.runs
        self.runs += 1
        self.calls.append(f"run{index}")
        if index == self.hang_on:
            raise LabreportError(
                f"{self.name} run did not finish within 1 s and was killed", "raise --timeout"
            )
        if index == self.interrupt_on:
            raise KeyboardInterrupt
        stdout = "not json\n" if index in self.bad_output_on else self.output(time.time())
        return RawRun(stdout, self.base_ns + index * self.step_ns, 0)

    def serve(self, ctx: RunContext, scope: Scope) -> Served:
        return Served(
            memory=self._memory() if scope.memory else [],
            serving=self._serving() if scope.serving else [],
        )

    def _memory(self) -> list[MemoryRecord]:
        if self.memory_bytes is None:
            return []
        record = MemoryRecord(
            runtime=self.name,
            method="synthetic",
            peak_bytes=self.memory_bytes + 1000,
            peak_method="synthetic",
            requests_sent=10,
            requests_ok=10,
            readings=[
                {"phase": "idle", "at_s": 0.0, "bytes": self.memory_bytes},
                {"phase": "load", "at_s": 1.0, "bytes": self.memory_bytes + 500},
            ],
        )
        return [record]

    def _serving(self) -> list[ServingRecord]:
        """Made-up latencies: concurrency c answers in c x base_ns, every response ok."""
        if self.memory_bytes is None:
            return []
        levels = [
            ServingLevel(
                concurrency=c,
                requests=10,
                ok=10,
                wall_ns=10 * self.base_ns,
                latencies_ns=[c * self.base_ns + i * self.step_ns for i in range(10)],
            )
            for c in (1, 8)
        ]
        return [
            ServingRecord(
                runtime=self.name, model="server", description="synthetic", command="fake-serve",
                client="synthetic", ready_ns=self.base_ns, first_request_ns=self.base_ns,
                levels=levels,
            )
        ]  # fmt: skip

    def cleanup(self) -> None:
        self.calls.append("cleanup")
