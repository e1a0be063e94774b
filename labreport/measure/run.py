"""`labreport measure`, one run, in one screen: select the runtimes, begin the result (or resume
it), build, prepare, the rounds, what each runtime serves, write. On failure what was measured is
kept as a partial file beside the output."""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from labreport.build.plan import Builder, real_build
from labreport.config import LabConfig
from labreport.errors import LabreportError, RunInterruptedError
from labreport.host import engine, paths, proc
from labreport.host.endpoints import Endpoints
from labreport.measure.plan import Plan, select_runtimes
from labreport.measure.progress import Progress, SilentProgress
from labreport.measure.resume import Resume, now_iso
from labreport.measure.rounds import prepared, run_rounds, serve_all
from labreport.record.models import SCHEMA_VERSION, Environment, Measurement, RuntimeRecord
from labreport.runtimes.base import RunContext
from labreport.runtimes.registry import Registry


def measure(
    config: LabConfig,
    plan: Plan,
    registry: Registry,
    environment: Callable[[], Environment],
    endpoints: Endpoints,
    builder: Builder = real_build,
    progress: Progress | None = None,
    health: Callable[[], None] | None = None,
) -> Measurement:
    """Run the whole measurement on the engine and containerd given, and write plan.output; on
    failure keep what was measured, marked partial, beside it.

    health, called after every round, raises LabreportError when something the run depends on
    (labreport's private engine) has died, so the run stops instead of collecting failures.
    """
    progress = progress or SilentProgress()
    active, records = select_runtimes(registry, plan, endpoints)
    run_id = uuid.uuid4().hex[:10]
    ctx = RunContext(config, run_id, plan.timeout_s, endpoints, labels={engine.LABEL_RUN: run_id})
    fresh = _fresh(config, plan, environment(), records)
    resume, result = Resume.begin(plan, config, fresh, active)
    state = paths.made_state_dir()
    try:
        with contextlib.ExitStack() as undo, _workdir(state, run_id) as workdir:
            undo.callback(ctx.close)
            progress.phase("build", 1)
            needs = frozenset().union(*(runtime.spec.needs for runtime in active))
            outcome = builder(config, ctx, needs, workdir, undo)
            resume.check_builds(outcome)
            result.artifacts, result.images = outcome.artifacts, outcome.images
            result.skipped_builds = dict(ctx.built.skipped)
            result.commands = list(outcome.commands)
            progress.step("built")
            with prepared(active, ctx, result):
                run_rounds(active, config, plan, result, progress, health, resume.first_round)
                serve_all(active, ctx, plan, result, progress)
            progress.done()
    except (*engine.ENGINE_ERRORS, LabreportError, KeyboardInterrupt) as error:
        progress.done()
        failure = resume.failed(result, _user_error(error, health))
        if failure is error:
            raise
        raise failure from error
    resume.write(result)
    return result


def _fresh(
    config: LabConfig, plan: Plan, facts: Environment, records: list[RuntimeRecord]
) -> Measurement:
    """A new result: the lab, the options, the environment and every runtime's record."""
    return Measurement(
        schema_version=SCHEMA_VERSION,
        lab=config.name,
        title=config.title,
        started_at=now_iso(),
        finished_at=now_iso(),
        runs=plan.runs,
        warmup=plan.warmup,
        timeout_s=plan.timeout_s,
        environment=facts,
        runtimes=records,
        modes=config.modes,
        cli_env=dict(config.once.env),
        cli_args=list(config.once.args),
        outputs_kept=True,
    )


@contextlib.contextmanager
def _workdir(state: Path, run_id: str) -> Iterator[Path]:
    """The run's scratch folder under the state directory, removed on every way out."""
    with tempfile.TemporaryDirectory(dir=state, prefix=f"run-{run_id}-") as work:
        yield Path(work)


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
