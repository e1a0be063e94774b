"""The session of one `labreport measure`: which engine and containerd it measures on (the
host's, labreport's private ones, or the target the user named), started as the chosen runtimes
need them, passed to the run explicitly, and stopped on every way out."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from labreport.config import LabConfig
from labreport.errors import LabreportError
from labreport.host import engine, private_containerd, private_engine
from labreport.host.endpoints import ContainerdEndpoint, Endpoints, EngineEndpoint
from labreport.host.private_containerd import ContainerdMode
from labreport.host.private_engine import EngineMode
from labreport.measure import environment, run
from labreport.measure.plan import Plan, requirements
from labreport.measure.progress import BarProgress
from labreport.record.models import Environment, Measurement
from labreport.runtimes.registry import REGISTRY, Registry


@dataclass(frozen=True)
class Session:
    """Where a measurement runs, and how to tell that it still can."""

    endpoints: Endpoints
    # Raises LabreportError when the engine measured has died or changed (None: nothing to ask).
    health: Callable[[], None] | None = None
    engine_facts: dict[str, str] = field(default_factory=dict)  # recorded beside the engine's


@contextlib.contextmanager
def session(
    plan: Plan,
    registry: Registry,
    host: Endpoints,
    containerd: ContainerdMode,
    engine_mode: EngineMode,
) -> Iterator[Session]:
    """The engine that can run what was asked for (host's, or labreport's private one: see
    private_engine), or the target engine the user named (plan.target); a private containerd
    where the ctr runtimes need one."""
    needs = requirements(registry, plan)
    if plan.target and engine_mode == EngineMode.PRIVATE:
        raise LabreportError(
            "--engine private and a target engine (--docker-host, --context) both chosen",
            "give one of them",
        )
    endpoints = host
    health: Callable[[], None] | None = None
    with contextlib.ExitStack() as around:
        if plan.target:  # the named engine is the one to measure
            health = engine.same_engine_check(plan.target)  # raises now if it does not answer
            endpoints = Endpoints(
                EngineEndpoint(plan.target, plan.target_source), endpoints.containerd
            )
            engine_mode = EngineMode.HOST
        started = around.enter_context(
            private_engine.as_needed(engine_mode, needs.containerd_store, host.engine)
        )
        engine_facts = {}
        if started is not None:
            endpoints, health = started.endpoints, started.check_alive
            engine_facts = {"private_start_seconds": f"{started.start_seconds:.2f}"}
        containerd_endpoint: ContainerdEndpoint = around.enter_context(
            private_containerd.as_needed(
                containerd, needs.containerd and not plan.target, endpoints.containerd
            )
        )
        yield Session(Endpoints(endpoints.engine, containerd_endpoint), health, engine_facts)


def measure_lab(
    config: LabConfig,
    config_path: Path,
    plan: Plan,
    host: Endpoints,
    registry: Registry = REGISTRY,
    containerd: ContainerdMode = ContainerdMode.AUTO,
    engine_mode: EngineMode = EngineMode.AUTO,
) -> Measurement:
    """`labreport measure`: the run, inside its session (host: the endpoints the environment
    names, which the session may replace)."""
    with session(plan, registry, host, containerd, engine_mode) as current:

        def facts() -> Environment:
            return environment.collect(config, config_path, current.endpoints, current.engine_facts)

        return run.measure(
            config,
            plan,
            registry,
            environment=facts,
            endpoints=current.endpoints,
            progress=BarProgress(),
            health=current.health,
        )
