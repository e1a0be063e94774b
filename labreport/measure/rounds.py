"""The rounds of one measurement: every runtime prepared, warmed up and run round-robin, each
run's output checked, then what each serves (memory, serving, checks); cleanup on every path out."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence

from labreport.config import LabConfig
from labreport.measure.plan import Plan
from labreport.measure.progress import Progress
from labreport.record.checks import check_output
from labreport.record.models import CapturedOutput, Measurement, Sample, bounded
from labreport.runtimes.base import RunContext, Runtime, Scope


def sample_once(
    runtime: Runtime, config: LabConfig, round_index: int, warmup: bool
) -> tuple[Sample, str]:
    """One run of the CLI mode, its verdict, and what it printed."""
    started = time.time()
    raw = runtime.run_once(config.once.env)
    if raw.exit_code != 0:
        ok, failure = False, f"exit code {raw.exit_code}: {raw.stderr.strip()[-200:]}"
    else:
        verdict = check_output(raw.stdout, config.check, time.time())
        ok, failure = verdict.ok, verdict.reason
    sample = Sample(
        runtime=runtime.name,
        round=round_index,
        warmup=warmup,
        wall_ns=raw.wall_ns,
        ok=ok,
        failure=failure,
        exit_code=raw.exit_code,
        engine_run_ns=raw.engine_run_ns,
        started_at_unix_s=started,
        shim=raw.shim,
        task_phases=raw.task_phases,
    )
    return sample, raw.stdout


def keep_output(result: Measurement, sample: Sample, stdout: str) -> None:
    """The runtime's first measured run whose output passed the checks, kept (bounded)."""
    if sample.warmup or not sample.ok:
        return
    if any(output.runtime == sample.runtime for output in result.outputs):
        return
    text, cut = bounded(stdout)
    result.outputs.append(
        CapturedOutput(runtime=sample.runtime, round=sample.round, text=text, truncated=cut)
    )


@contextlib.contextmanager
def prepared(active: list[Runtime], ctx: RunContext, result: Measurement) -> Iterator[None]:
    """Every runtime prepared, after the builds: one that finds it cannot run after all is
    recorded why and leaves active; the others' commands are recorded. Cleanup for every runtime
    that was prepared, on every path out."""
    records = {record.name: record for record in result.runtimes}
    done: list[Runtime] = []
    try:
        for runtime in list(active):
            done.append(runtime)
            ready = runtime.prepare(ctx)
            record = records[runtime.name]
            if ready.unusable:  # nothing was prepared: nothing to clean up
                done.remove(runtime)
                active.remove(runtime)
                record.available, record.reason = False, ready.unusable
            else:
                record.command = ready.command
                result.commands.append(ready.command)
        yield
    finally:
        for runtime in reversed(done):
            with contextlib.suppress(Exception):
                runtime.cleanup()


def run_rounds(
    active: Sequence[Runtime],
    config: LabConfig,
    plan: Plan,
    result: Measurement,
    progress: Progress,
    health: Callable[[], None] | None,
    first_round: int = 0,
) -> None:
    """Warm-up and measured runs, round-robin so that drift on the machine hits all alike.

    A resumed run (first_round > 0) first warms every runtime up again, as many runs as the
    warm-up asks, unrecorded (counted in the runtime's details): the rounds it adds must not
    pay for a cold start that the rounds before it did not.
    """
    rounds = plan.rounds
    rewarm = min(plan.warmup, first_round)
    left = {
        r.name: rewarm + sum(plan.takes_part(r.name, i) for i in range(first_round, rounds))
        for r in active
    }
    progress.phase("startup", sum(left.values()), left)
    for _ in range(rewarm):
        for runtime in active:
            progress.step(f"{runtime.name} warm-up again after resuming", runtime.name)
            sample_once(runtime, config, 0, warmup=True)
    for round_index in range(first_round, rounds):
        for runtime in active:
            if not plan.takes_part(runtime.name, round_index):
                continue  # its declared runs are done; the others go on
            total = plan.warmup + plan.runs_of(runtime.name)
            progress.step(f"{runtime.name} round {round_index + 1}/{total}", runtime.name)
            sample, stdout = sample_once(
                runtime, config, round_index, warmup=round_index < plan.warmup
            )
            result.samples.append(sample)
            keep_output(result, sample, stdout)
        if health is not None:
            health()


def serve_all(
    active: Sequence[Runtime], ctx: RunContext, plan: Plan, result: Measurement, progress: Progress
) -> None:
    """After the rounds: what each runtime serves (memory, serving, the functional checks) and
    what it found while running."""
    scope = Scope(memory=plan.memory, serving=plan.serving)
    progress.phase("serve", len(active), {runtime.name: 1 for runtime in active})
    records = {record.name: record for record in result.runtimes}
    for runtime in active:
        progress.step(f"{runtime.name} memory, serving and checks", runtime.name)
        served = runtime.serve(ctx, scope)
        result.memory.extend(served.memory)
        result.serving.extend(served.serving)
        result.checks.extend(served.checks)
        records[runtime.name].details.update(served.details)
