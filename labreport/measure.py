"""`labreport measure`: build, run every runtime round-robin, check every output, write raw JSON."""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import docker.errors
import requests.exceptions
import urllib3.exceptions

from labreport import build, engine, fsutil, oci, proc, sizes, tools
from labreport.check import check_output
from labreport.config import LabConfig
from labreport.errors import LabreportError, RunInterruptedError
from labreport.models import (
    SCHEMA_VERSION,
    ArtifactRecord,
    Environment,
    ImageRecord,
    Measurement,
    MemoryRecord,
    RuntimeRecord,
    Sample,
    load_measurement,
)
from labreport.runtimes import Built, RunContext, Runtime


@dataclass(frozen=True)
class Plan:
    runs: int
    warmup: int
    timeout_s: float
    output: Path
    include: tuple[str, ...] = ()  # asked for by name: must be available
    skip: tuple[str, ...] = ()
    memory: bool = True
    target: str = ""  # an engine the user named (--docker-host, --context, DOCKER_HOST): its URL
    target_is_local: bool = True
    target_source: str = "given"
    resume: bool = False  # continue from <output stem>.partial.json


def not_on_target(runtime: object, plan: Plan) -> str:
    """Why a runtime cannot measure the target engine the user named ("" when it can)."""
    if not plan.target:
        return ""
    if getattr(runtime, "on_client_host", False) and not plan.target_is_local:
        return (
            f"not on this target: it runs on the client's own host, and the target is the "
            f"remote engine at {plan.target}"
        )
    if getattr(runtime, "needs_engine_containerd", False) and not os.environ.get(
        "LABREPORT_CONTAINERD_SOCKET"
    ):
        return (
            f"not on this target: ctr needs the containerd of the engine at {plan.target}, "
            "whose socket labreport does not know (set LABREPORT_CONTAINERD_SOCKET)"
        )
    return ""


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


def check_plan(plan: Plan) -> None:
    """What can be checked before anything is built, so that no run's work is lost at the end."""
    if not math.isfinite(plan.timeout_s):
        raise LabreportError(
            f"--timeout {plan.timeout_s}: not a finite number of seconds",
            "give seconds, e.g. --timeout 60",
        )
    output, parent = plan.output, plan.output.parent
    if output.is_dir():
        raise LabreportError(
            f"-o {output} is a directory", "give a file, e.g. -o measurements/run.json"
        )
    if output.exists() and not output.is_file():
        raise LabreportError(f"-o {output} is not a regular file", "give a file path")
    if parent.exists() and not parent.is_dir():
        raise LabreportError(f"-o {output}: {parent} is not a directory", "give a file path")
    if not parent.is_dir():
        raise LabreportError(f"-o {output}: the folder {parent} does not exist", "create it")
    try:  # os.access says yes for root in /proc or on a read-only mount: try for real
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".labreport-probe-"):
            pass
    except OSError as error:
        raise LabreportError(
            f"-o {output}: cannot write in {parent} ({error.strerror})",
            "choose a folder you can write in",
        ) from error
    tools.made_state_dir()
    if plan.resume and not partial_path(output).is_file():
        raise LabreportError(
            f"--resume: no partial measurement {partial_path(output)} to continue",
            "measure without --resume (an interrupted run keeps its partial file there)",
        )


class Progress(Protocol):
    def phase(self, name: str, total: int) -> None: ...

    def step(self, detail: str) -> None: ...

    def done(self) -> None: ...


class SilentProgress:
    def phase(self, name: str, total: int) -> None:
        pass

    def step(self, detail: str) -> None:
        pass

    def done(self) -> None:
        pass


@dataclass
class BuildOutcome:
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    images: list[ImageRecord] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


Builder = Callable[
    [LabConfig, RunContext, frozenset[str], Path, contextlib.ExitStack], BuildOutcome
]


def real_build(
    config: LabConfig,
    ctx: RunContext,
    needs: frozenset[str],
    workdir: Path,
    undo: contextlib.ExitStack,
) -> BuildOutcome:
    """Host builds always; the scratch image when a runtime needs it (removed afterwards)."""
    outcome = BuildOutcome()
    for name in config.builds:
        reason = build.unavailable(config, name)
        if not reason:
            try:
                artifact = build.go_build(config, name, workdir / name)
            except LabreportError as error:
                if not config.builds[name].optional:
                    raise
                reason = f"the build failed: {error.message}"
        if reason:
            ctx.built.skipped[name] = reason
            continue
        ctx.built.files[name] = artifact.path
        outcome.artifacts.append(
            ArtifactRecord(
                name=name,
                origin="host-build",
                path=artifact.path.name,
                size_bytes=artifact.size_bytes,
                sha256=artifact.sha256,
                build_command=artifact.command,
                build_seconds=round(artifact.duration_s, 3),
            )
        )
        outcome.commands.append(artifact.command)
    if needs & {"image", "image-archive"}:
        client = ctx.docker()
        tag = f"{config.image.repository}:run-{ctx.run_id}"
        image_id, command = build.build_image(client, config, tag, ctx.labels)
        # Only the tag is ours to remove: the same image id may also carry a user's tag.
        undo.callback(_remove_build_leftovers, client)
        undo.callback(_remove_tag, client, tag)
        # Containers go first (LIFO), or the engine refuses to untag an image still in use.
        undo.callback(ctx.sweep_containers)
        ctx.built.image_ids["image"] = image_id
        inner = build.file_from_image(client, image_id, config.image.binary_path, ctx.labels)
        outcome.artifacts.append(
            ArtifactRecord(
                name=f"image:{config.image.binary_path}",
                origin="image",
                path=config.image.binary_path,
                size_bytes=len(inner),
                sha256=build.sha256_bytes(inner),
                build_command=command,
            )
        )
        archive = workdir / "image.tar"
        outcome.images.append(
            sizes.docker_image_record(client, "traditional", tag, image_id, command, archive)
        )
        ctx.built.files["image-archive"] = archive
        outcome.commands.append(command)
        outcome.commands.append(f"{shlex.join(engine.cli())} save {tag} -o image.tar")
    if "wasm-image" in needs:
        spec = config.wasm_image
        module = ctx.built.files[spec.build].read_bytes()
        reference = oci.qualified(f"{spec.reference}:run-{ctx.run_id}")
        image = oci.write_wasm_image(module, spec.module_path, reference, workdir / "wasm.tar")
        command = (
            f"labreport: OCI image layout for {oci.PLATFORM}, one gzip layer with "
            f"{spec.module_path}, entrypoint {spec.module_path}, saved as wasm.tar "
            f"(equivalent: buildah bud --platform {oci.PLATFORM} -f Dockerfile.wasm)"
        )
        ctx.built.files["wasm-image"] = image.archive
        ctx.built.references["wasm-image"] = reference
        outcome.images.append(oci.image_record(image, "wasm", reference, command))
        outcome.commands.append(command)
    return outcome


# An engine that died mid-run cannot be cleaned through; the private engine's next start does it.
ENGINE_GONE = (docker.errors.APIError, requests.exceptions.RequestException)
# What a Docker engine that fails or dies mid-call raises (a broken build stream is urllib3's).
ENGINE_ERRORS = (
    docker.errors.DockerException,
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
)


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


def _remove_tag(client: docker.DockerClient, tag: str) -> None:
    with contextlib.suppress(*ENGINE_GONE):
        client.images.remove(tag, noprune=False)


def _remove_build_leftovers(client: docker.DockerClient) -> None:
    with contextlib.suppress(*ENGINE_GONE):
        engine.remove_build_leftovers(client)


def select_runtimes(
    registry: dict[str, Callable[[], Runtime]], plan: Plan
) -> tuple[list[Runtime], list[RuntimeRecord]]:
    unknown = sorted((set(plan.include) | set(plan.skip)) - set(registry))
    if unknown:
        raise LabreportError(
            f"unknown runtime: {', '.join(unknown)}", f"choose from: {', '.join(registry)}"
        )
    names = [n for n in (plan.include or tuple(registry)) if n not in plan.skip]
    active: list[Runtime] = []
    records: list[RuntimeRecord] = []
    for name in names:
        runtime = registry[name]()
        reason = not_on_target(runtime, plan)
        ok, reason = (False, reason) if reason else runtime.available()
        if not ok and name in plan.include:
            raise LabreportError(
                f"runtime {name} is not available on this host: {reason}",
                "run 'labreport doctor', or leave it out of --runtime",
            )
        records.append(
            RuntimeRecord(
                name=name, description=runtime.description, available=ok, reason=reason, command=""
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


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def sample_once(runtime: Runtime, config: LabConfig, round_index: int, warmup: bool) -> Sample:
    started = time.time()
    raw = runtime.run_once(config.once.env)
    if raw.exit_code != 0:
        ok, failure = False, f"exit code {raw.exit_code}: {raw.stderr.strip()[-200:]}"
    else:
        verdict = check_output(raw.stdout, config.check, time.time())
        ok, failure = verdict.ok, verdict.reason
    return Sample(
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


@contextlib.contextmanager
def _prepared(runtimes: Sequence[Runtime], ctx: RunContext) -> Iterator[None]:
    """Cleanup for every runtime that was prepared, on every path out."""
    prepared: list[Runtime] = []
    try:
        for runtime in runtimes:
            prepared.append(runtime)
            runtime.prepare(ctx)
        yield
    finally:
        for runtime in reversed(prepared):
            with contextlib.suppress(Exception):
                runtime.cleanup()


def _drop_unusable(active: list[Runtime], ctx: RunContext, result: Measurement) -> None:
    """After the builds: runtimes that find they cannot run after all are recorded why."""
    records = {record.name: record for record in result.runtimes}
    for runtime in list(active):
        reason = runtime.usable(ctx)
        if reason:
            active.remove(runtime)
            records[runtime.name].available = False
            records[runtime.name].reason = reason


def _rounds(
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
    rounds = plan.warmup + plan.runs
    rewarm = min(plan.warmup, first_round)
    progress.phase("startup", (rounds - first_round + rewarm) * len(active))
    for _ in range(rewarm):
        for runtime in active:
            progress.step(f"{runtime.name} warm-up again after resuming")
            sample_once(runtime, config, 0, warmup=True)
    for round_index in range(first_round, rounds):
        for runtime in active:
            progress.step(f"{runtime.name} round {round_index + 1}/{rounds}")
            result.samples.append(
                sample_once(runtime, config, round_index, warmup=round_index < plan.warmup)
            )
        if health is not None:
            health()


# Environment facts that may differ between two starts of the same setup (a private engine's
# start time and how long it took); everything else must match for a run to be resumed.
_VOLATILE = ("start", "seconds")


def _comparable(environment: Environment) -> dict[str, object]:
    facts = environment.model_dump()
    facts["engine"] = {
        key: value
        for key, value in facts["engine"].items()
        if not any(word in key for word in _VOLATILE)
    }
    return facts


def _differences(before: dict[str, object], now: dict[str, object], where: str = "") -> list[str]:
    changed = []
    for key in sorted(set(before) | set(now)):
        old, new = before.get(key), now.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changed += _differences(old, new, f"{where}{key}.")
        elif old != new:
            changed.append(f"{where}{key} ({old!r} then, {new!r} now)")
    return changed


def resumable(
    plan: Plan, config: LabConfig, environment: Environment, names: set[str]
) -> Measurement:
    """The partial file to continue, if what it measured is what this run would measure."""
    path = partial_path(plan.output)
    partial = load_measurement(path)
    refuse = "measure again without --resume (the partial file stays as it is)"
    if not partial.partial:
        raise LabreportError(f"{path}: not a partial measurement", refuse)
    changed = []
    if partial.lab != config.name:
        changed.append(f"lab ({partial.lab!r} then, {config.name!r} now)")
    for what, old, new in (
        ("runs", partial.runs, plan.runs),
        ("warmup", partial.warmup, plan.warmup),
        ("timeout", partial.timeout_s, plan.timeout_s),
    ):
        if old != new:
            changed.append(f"--{what} ({old:g} then, {new:g} now)")
    measured = {record.name for record in partial.runtimes if record.available}
    if measured != names:
        changed.append(
            f"runtimes ({', '.join(sorted(measured))} then, {', '.join(sorted(names))} now)"
        )
    changed += _differences(_comparable(partial.environment), _comparable(environment))
    if changed:
        raise LabreportError(
            f"--resume: {path} was measured under other conditions: {'; '.join(changed[:4])}"
            + (f" and {len(changed) - 4} more" if len(changed) > 4 else ""),
            refuse,
        )
    return partial


def _continue(partial: Measurement, active: Sequence[Runtime]) -> tuple[Measurement, int]:
    """The partial result without its unfinished round, memory and checks; the next round."""
    result = partial.model_copy(deep=True)
    names = {runtime.name for runtime in active}
    per_round: dict[int, set[str]] = {}
    for sample in result.samples:
        per_round.setdefault(sample.round, set()).add(sample.runtime)
    done = 0
    while per_round.get(done) == names:
        done += 1
    result.samples = [s for s in result.samples if s.round < done]
    result.memory, result.checks = [], []
    result.partial, result.partial_reason = False, ""
    result.resumed_at.append(_now_iso())
    return result, done


def _memory_and_checks(
    active: Sequence[Runtime], ctx: RunContext, plan: Plan, result: Measurement, progress: Progress
) -> None:
    """After the rounds: memory, the functional checks, and what each runtime found."""
    if plan.memory:
        progress.phase("memory", len(active))
        for runtime in active:
            progress.step(f"{runtime.name} server")
            result.memory.extend(runtime.memory(ctx))
    progress.phase("checks", len(active))
    for runtime in active:
        progress.step(f"{runtime.name} checks")
        result.checks.extend(runtime.checks(ctx))
    by_name = {runtime.name: runtime for runtime in active}
    for record in result.runtimes:
        if record.name in by_name:
            record.details.update(by_name[record.name].details())


def measure(
    config: LabConfig,
    plan: Plan,
    registry: dict[str, Callable[[], Runtime]],
    environment: Callable[[], Environment],
    builder: Builder = real_build,
    progress: Progress | None = None,
    health: Callable[[], None] | None = None,
) -> Measurement:
    """Run the whole measurement and write plan.output; on failure write it marked partial.

    health, called after every round, raises LabreportError when something the run depends on
    (labreport's private engine) has died, so the run stops instead of collecting failures.
    """
    progress = progress or SilentProgress()
    active, runtime_records = select_runtimes(registry, plan)
    facts = environment()
    partial = resumable(plan, config, facts, {r.name for r in active}) if plan.resume else None
    run_id = uuid.uuid4().hex[:10]
    ctx = RunContext(
        config=config,
        run_id=run_id,
        timeout_s=plan.timeout_s,
        built=Built(),
        labels={build.LABEL_RUN: run_id},
    )
    result = Measurement(
        schema_version=SCHEMA_VERSION,
        lab=config.name,
        title=config.title,
        started_at=_now_iso(),
        finished_at=_now_iso(),
        runs=plan.runs,
        warmup=plan.warmup,
        timeout_s=plan.timeout_s,
        environment=facts,
        runtimes=runtime_records,
    )
    first_round = 0
    if partial is not None:
        result, first_round = _continue(partial, active)
    tools.made_state_dir()
    try:
        with (
            contextlib.ExitStack() as undo,
            tempfile.TemporaryDirectory(dir=tools.state_dir(), prefix=f"run-{run_id}-") as workdir,
        ):
            undo.callback(ctx.close)
            progress.phase("build", 1)
            needs = frozenset().union(*(runtime.needs for runtime in active))
            outcome = builder(config, ctx, needs, Path(workdir), undo)
            if partial is not None:
                _same_builds(partial, outcome)
            result.artifacts, result.images = outcome.artifacts, outcome.images
            result.skipped_builds = dict(ctx.built.skipped)
            result.commands = list(outcome.commands)
            progress.step("built")
            _drop_unusable(active, ctx, result)
            by_name = {runtime.name: runtime for runtime in active}
            with _prepared(active, ctx):
                for record in result.runtimes:
                    if record.name in by_name:
                        record.command = by_name[record.name].command(config.once.env)
                        result.commands.append(record.command)
                _rounds(active, config, plan, result, progress, health, first_round)
                _memory_and_checks(active, ctx, plan, result, progress)
            progress.done()
    except (*ENGINE_ERRORS, LabreportError, KeyboardInterrupt) as error:
        progress.done()
        failure = _user_error(error, health)
        reason = (
            "interrupted (Ctrl-C or SIGTERM)"
            if isinstance(error, KeyboardInterrupt)
            else failure.message
        )
        _kept(failure, _save_partial(result, plan.output, reason))
        if failure is error:
            raise
        raise failure from error
    result.finished_at = _now_iso()
    fsutil.atomic_write_json(plan.output, result.model_dump(mode="json"))
    if partial is not None:  # continued and complete: the partial file has served
        partial_path(plan.output).unlink(missing_ok=True)
    return result


def _same_builds(partial: Measurement, outcome: BuildOutcome) -> None:
    """A resumed run must measure the very programs the partial run measured."""
    before = {a.name: a.sha256 for a in partial.artifacts}
    now = {a.name: a.sha256 for a in outcome.artifacts}
    changed = sorted(name for name in before.keys() & now.keys() if before[name] != now[name])
    if changed or before.keys() != now.keys():
        raise LabreportError(
            "--resume: the builds differ from the partial run's "
            f"({', '.join(changed) or 'other builds'})",
            "measure again without --resume",
        )


def partial_path(output: Path) -> Path:
    return output.with_name(output.stem + ".partial" + output.suffix)


def _save_partial(result: Measurement, output: Path, reason: str) -> Path | None:
    """Keep what was measured, marked partial, beside (never over) the complete file; where."""
    if not result.samples and not result.artifacts:
        return None
    result.partial = True
    result.partial_reason = reason
    result.finished_at = _now_iso()
    path = partial_path(output)
    fsutil.atomic_write_json(path, result.model_dump(mode="json"))
    return path


def _kept(error: LabreportError, partial: Path | None) -> None:
    """Add to the error's hint where what was measured was kept (or that nothing was)."""
    kept = (
        f"what was measured is kept in {partial} (add --resume to continue it)"
        if partial
        else "nothing was measured yet"
    )
    error.hint = f"{error.hint}; {kept}" if error.hint else kept


def memory_summary(
    records: Sequence[MemoryRecord],
) -> dict[str, tuple[int | None, int | None]]:
    """Per runtime and mode: (median idle bytes, peak bytes); for the end-of-run table."""
    return {
        f"{record.runtime} ({record.mode})": (record.idle_median_bytes(), record.peak_bytes)
        for record in records
    }
