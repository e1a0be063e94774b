"""`labreport measure`, one run: select, build, prepare, rounds, memory and checks, then the
raw JSON; on failure what was measured is kept as a partial file beside the output."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from labreport.build.plan import Builder, real_build
from labreport.config import LabConfig
from labreport.errors import LabreportError, RunInterruptedError
from labreport.host import engine, fsutil, paths, proc
from labreport.host.endpoints import Endpoints
from labreport.measure import resume
from labreport.measure.plan import Plan, partial_path, select_runtimes
from labreport.measure.progress import Progress, SilentProgress
from labreport.measure.rounds import drop_unusable, memory_and_checks, prepared, run_rounds
from labreport.record.models import SCHEMA_VERSION, Environment, Measurement
from labreport.runtimes.base import RunContext
from labreport.runtimes.registry import Registry


def _user_error(error: BaseException, health: Callable[[], None] | None) -> LabreportError:
    """What the user is told about a run that stopped: the error itself if it is one for users;
    for an engine error, the precise one when the private engine has died."""
    if isinstance(error, LabreportError):
        return error
    if isinstance(error, KeyboardInterrupt):
        return RunInterruptedError("interrupted", "run the command again")
    if health is not None:
        try:
            health()
        except LabreportError as died:
            return died
    return LabreportError(
        f"the Docker engine failed during the run: {proc.tail(str(error), 300)}",
        "check it with 'labreport doctor' and run again",
    )


def measure(
    config: LabConfig,
    plan: Plan,
    registry: Registry,
    environment: Callable[[], Environment],
    builder: Builder = real_build,
    progress: Progress | None = None,
    health: Callable[[], None] | None = None,
    endpoints: Endpoints | None = None,
) -> Measurement:
    """Run the whole measurement and write plan.output; on failure write it marked partial.

    endpoints: the engine and containerd to use (default: those the environment names).
    health, called after every round, raises LabreportError when something the run depends on
    (labreport's private engine) has died, so the run stops instead of collecting failures.
    """
    progress = progress or SilentProgress()
    endpoints = endpoints or Endpoints.from_environment()
    active, runtime_records = select_runtimes(registry, plan, endpoints)
    facts = environment()
    names = {r.name for r in active}
    partial = resume.resumable(plan, config, facts, names) if plan.resume else None
    run_id = uuid.uuid4().hex[:10]
    ctx = RunContext(
        config=config,
        run_id=run_id,
        timeout_s=plan.timeout_s,
        endpoints=endpoints,
        labels={engine.LABEL_RUN: run_id},
    )
    result = Measurement(
        schema_version=SCHEMA_VERSION,
        lab=config.name,
        title=config.title,
        started_at=resume.now_iso(),
        finished_at=resume.now_iso(),
        runs=plan.runs,
        warmup=plan.warmup,
        timeout_s=plan.timeout_s,
        environment=facts,
        runtimes=runtime_records,
    )
    first_round = 0
    if partial is not None:
        result, first_round = resume.continue_from(partial, active, plan)
    state = paths.made_state_dir()
    try:
        with (
            contextlib.ExitStack() as undo,
            tempfile.TemporaryDirectory(dir=state, prefix=f"run-{run_id}-") as workdir,
        ):
            undo.callback(ctx.close)
            progress.phase("build", 1)
            needs = frozenset().union(*(runtime.needs for runtime in active))
            outcome = builder(config, ctx, needs, Path(workdir), undo)
            if partial is not None:
                resume.same_builds(partial, outcome)
            result.artifacts, result.images = outcome.artifacts, outcome.images
            result.skipped_builds = dict(ctx.built.skipped)
            result.commands = list(outcome.commands)
            progress.step("built")
            drop_unusable(active, ctx, result)
            by_name = {runtime.name: runtime for runtime in active}
            with prepared(active, ctx):
                for record in result.runtimes:
                    if record.name in by_name:
                        record.command = by_name[record.name].command(config.once.env)
                        result.commands.append(record.command)
                run_rounds(active, config, plan, result, progress, health, first_round)
                memory_and_checks(active, ctx, plan, result, progress)
            progress.done()
    except (*engine.ENGINE_ERRORS, LabreportError, KeyboardInterrupt) as error:
        progress.done()
        failure = _user_error(error, health)
        reason = (
            "interrupted (Ctrl-C or SIGTERM)"
            if isinstance(error, KeyboardInterrupt)
            else failure.message
        )
        resume.add_where_kept(failure, resume.save_partial(result, plan.output, reason))
        if failure is error:
            raise
        raise failure from error
    result.finished_at = resume.now_iso()
    try:
        fsutil.atomic_write_json(plan.output, result.model_dump(mode="json"))
    except (OSError, LabreportError) as error:
        raise resume.unsaved(result, plan.output, error) from error
    if partial is not None:  # continued and complete: the partial file has served
        partial_path(plan.output).unlink(missing_ok=True)
    return result
