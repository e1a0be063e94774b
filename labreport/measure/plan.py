"""What one `measure` run will do, checked before anything is built: the options, the output
paths, and which runtimes take part (and why the others do not)."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host import fsutil, paths, shim_cache
from labreport.host.endpoints import Endpoints
from labreport.record.models import RuntimeRecord
from labreport.runtimes.base import Requirements, Runtime
from labreport.runtimes.registry import Registry


@dataclass(frozen=True)
class Plan:
    runs: int
    warmup: int
    timeout_s: float
    output: Path
    include: tuple[str, ...] = ()  # asked for by name: must be available
    skip: tuple[str, ...] = ()
    memory: bool = True  # memory: a CLI run's peak, and each service's idle and under load
    serving: bool = True  # serving: each runtime's services under a checked load
    target: str = ""  # an engine the user named (--docker-host, --context, DOCKER_HOST): its URL
    target_is_local: bool = True
    target_source: str = "given"
    resume: bool = False  # continue from <output stem>.partial.json
    # Runtimes measured fewer times than runs, by the lab config's declared rule.
    runs_by_runtime: Mapping[str, int] = field(default_factory=dict)

    @property
    def rounds(self) -> int:
        """Warm-up rounds and measured rounds."""
        return self.warmup + self.runs

    def runs_of(self, runtime: str) -> int:
        """How many measured runs this runtime takes (runs, or fewer by the declared rule)."""
        return min(self.runs, self.runs_by_runtime.get(runtime, self.runs))

    def takes_part(self, runtime: str, round_index: int) -> bool:
        """Every runtime warms up; one with fewer runs sits out the rounds after its last."""
        return round_index < self.warmup + self.runs_of(runtime)


def partial_path(output: Path) -> Path:
    return output.with_name(output.stem + ".partial" + output.suffix)


def runtime_names(values: list[str] | None, option: str) -> tuple[str, ...]:
    """Names from repeated, comma-separated options; given but naming nothing, or naming one
    runtime twice, is an error (it would otherwise mean "all" or measure one runtime twice)."""
    if values is None:
        return ()
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if not names:
        raise LabreportError(
            f"{option} names no runtime",
            f"name one or more (e.g. {option} native,ctr-runc), or leave {option} out",
        )
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise LabreportError(
            f"{option} names {', '.join(twice)} more than once", "name each runtime once"
        )
    return tuple(names)


def check_plan(plan: Plan, inputs: Sequence[Path] = ()) -> None:
    """What can be checked before anything is built, so that no run's work is lost at the end;
    inputs are the files the run reads, which its output must not be."""
    if not math.isfinite(plan.timeout_s):
        raise LabreportError(
            f"--timeout {plan.timeout_s}: not a finite number of seconds",
            "give seconds, e.g. --timeout 60",
        )
    output = fsutil.destination(plan.output, f"-o {plan.output}")
    fsutil.refuse_inputs([plan.output, partial_path(plan.output)], inputs, "-o")
    parent = output.parent
    if not parent.is_dir():
        raise LabreportError(f"-o {plan.output}: the folder {parent} does not exist", "create it")
    try:  # os.access says yes for root in /proc or on a read-only mount: try for real
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".labreport-probe-"):
            pass
    except OSError as error:
        raise LabreportError(
            f"-o {plan.output}: cannot write in {parent} ({error.strerror})",
            "choose a folder you can write in",
        ) from error
    paths.made_state_dir()
    shim_cache.cache_dir()
    if plan.resume and not partial_path(output).is_file():
        raise LabreportError(
            f"--resume: no partial measurement {partial_path(output)} to continue",
            "measure without --resume (an interrupted run keeps its partial file there)",
        )


def not_on_target(runtime: Runtime, plan: Plan) -> str:
    """Why a runtime cannot measure the target engine the user named ("" when it can)."""
    if not plan.target:
        return ""
    if runtime.spec.requires.client_host and not plan.target_is_local:
        return (
            f"not on this target: it runs on the client's own host, and the target is the "
            f"remote engine at {plan.target}"
        )
    if runtime.spec.requires.containerd and not os.environ.get("LABREPORT_CONTAINERD_SOCKET"):
        return (
            f"not on this target: ctr needs the containerd of the engine at {plan.target}, "
            "whose socket labreport does not know (set LABREPORT_CONTAINERD_SOCKET)"
        )
    return ""


def chosen(registry: Registry, plan: Plan) -> list[str]:
    """The runtimes the options choose, in the order given or the registry's; names the
    registry lacks stay in (select_runtimes refuses them)."""
    return [name for name in (plan.include or tuple(registry)) if name not in plan.skip]


def requirements(registry: Registry, plan: Plan) -> Requirements:
    """What the chosen runtimes need of the host, together (read before anything starts)."""
    needs = [registry[name]().spec.requires for name in chosen(registry, plan) if name in registry]
    return Requirements(
        client_host=any(need.client_host for need in needs),
        containerd=any(need.containerd for need in needs),
        containerd_store=any(need.containerd_store for need in needs),
    )


def select_runtimes(
    registry: Registry, plan: Plan, endpoints: Endpoints
) -> tuple[list[Runtime], list[RuntimeRecord]]:
    unknown = sorted((set(plan.include) | set(plan.skip)) - set(registry))
    if unknown:
        raise LabreportError(
            f"unknown runtime: {', '.join(unknown)}", f"choose from: {', '.join(registry)}"
        )
    counted = sorted(set(plan.runs_by_runtime) - set(registry))
    if counted:
        raise LabreportError(
            f"the lab config's measure.runs_by_runtime names {', '.join(counted)}, "
            "which is not a runtime",
            f"fix the lab config; runtimes: {', '.join(registry)}",
        )
    names = chosen(registry, plan)
    active: list[Runtime] = []
    records: list[RuntimeRecord] = []
    for name in names:
        runtime = registry[name]()
        reason = not_on_target(runtime, plan)
        ok, reason = (False, reason) if reason else runtime.available(endpoints)
        if not ok and name in plan.include:
            raise LabreportError(
                f"runtime {name} is not available on this host: {reason}",
                paths.NEEDS_ROOT_HINT
                if reason.startswith(paths.NEEDS_ROOT)
                else "run 'labreport doctor', or leave it out of --runtime",
            )
        records.append(
            RuntimeRecord(
                name=name,
                description=runtime.spec.description,
                available=ok,
                reason=reason,
                command="",
                declared_runs=plan.runs_of(name) if plan.runs_of(name) < plan.runs else None,
            )
        )
        if ok:
            active.append(runtime)
    for name in registry:
        if name not in names:
            records.append(
                RuntimeRecord(
                    name=name,
                    description="",
                    available=False,
                    reason="left out by the user (--skip/--runtime)",
                )
            )
    if not active:
        raise LabreportError(
            "no runtime is available to measure", "run 'labreport doctor' to see what is missing"
        )
    return active, records
