"""`labreport measure`, as hyperfine's main.rs reads: options -> plan (checked before any
build) -> session (engine and containerd) -> rounds -> record -> write (measure/run.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from labreport import config
from labreport.commands.common import host_endpoints, lab_config
from labreport.config import LabConfig
from labreport.host import engine, fsutil, paths
from labreport.host.endpoints import is_local, named_engine
from labreport.host.private_containerd import ContainerdMode
from labreport.host.private_engine import EngineMode
from labreport.measure import plan as measure_plan
from labreport.measure import session
from labreport.measure.plan import Plan
from labreport.record.models import Measurement


@dataclass(frozen=True)
class Options:
    """measure's options as the command line gives them (None: the lab config's value)."""

    lab: Path | None = None
    config_path: Path | None = None
    runs: int | None = None
    warmup: int | None = None
    runtime: list[str] | None = None
    skip: list[str] | None = None
    output: Path | None = None
    timeout_s: float | None = None
    resume: bool = False
    memory: bool = True
    serving: bool = True
    containerd: ContainerdMode = ContainerdMode.AUTO
    engine: EngineMode = EngineMode.AUTO
    docker_host: str | None = None
    context: str | None = None


def run(options: Options) -> tuple[Measurement, Path]:
    """The measurement, written; and where."""
    config_path = lab_config(options.lab, options.config_path)
    lab = config.load(config_path)
    plan = make_plan(lab, config_path, options)
    with _alone(plan.output):
        result = session.measure_lab(
            lab,
            config_path,
            plan,
            host_endpoints(),
            containerd=options.containerd,
            engine_mode=options.engine,
        )
    return result, plan.output


@contextlib.contextmanager
def _alone(output: Path) -> Iterator[None]:
    """One measure on this machine at a time (its figures would be 3-4x off beside another),
    and one per output folder whoever runs it (two would write one file): each an flock, the
    second run refused in one line before it builds anything."""
    note = f"pid {os.getpid()}, writing {output}"
    with (
        fsutil.exclusive(
            paths.made_state_dir() / "measure.lock",
            "another labreport measure is running on this machine",
            "wait for it to finish: figures taken beside another run are 3-4x off",
            note,
        ),
        fsutil.exclusive(
            output.parent,
            f"another labreport measure is writing into {output.parent}",
            "wait for it to finish, or measure into another folder",
        ),
    ):
        yield


def make_plan(lab: LabConfig, config_path: Path, options: Options) -> Plan:
    """The options and the lab config as one plan, checked before anything is built; the
    engine the user named (an option, DOCKER_HOST or DOCKER_CONTEXT) is its target."""
    output = options.output
    if output is None:  # the lab's own measurements/, made for a new lab, inside the lab
        output = config_path.parent / "measurements" / f"{lab.name}.json"
        fsutil.confined(config_path.parent, output, "the lab's measurements")
        output.parent.mkdir(exist_ok=True)
    plan = Plan(
        runs=options.runs or lab.measure.runs,
        warmup=lab.measure.warmup if options.warmup is None else options.warmup,
        timeout_s=options.timeout_s or lab.measure.timeout_s,
        output=output,
        include=measure_plan.runtime_names(options.runtime, "--runtime"),
        skip=measure_plan.runtime_names(options.skip, "--skip"),
        memory=options.memory,
        serving=options.serving,
        resume=options.resume,
        runs_by_runtime=lab.measure.runs_by_runtime,
    )
    measure_plan.check_plan(plan, inputs=[config_path, *lab.input_files()])
    docker_host, context, source = named_engine(options.docker_host, options.context)
    target = engine.resolve_target(docker_host, context)
    if target:
        plan = dataclasses.replace(
            plan, target=target, target_is_local=is_local(target), target_source=source
        )
    return plan
