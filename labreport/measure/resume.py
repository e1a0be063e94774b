"""Partial files and `measure --resume`: what an interrupted run keeps, and when it may be
continued (the same lab, options, runtimes, environment and builds). A run passes through one
Resume: it begins the result (fresh, or the partial one continued), checks the builds, keeps
what was measured when the run fails, and writes the file when it ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from labreport.build.plan import BuildOutcome
from labreport.config import LabConfig
from labreport.errors import LabreportError, RunInterruptedError
from labreport.host import fsutil, paths
from labreport.measure.plan import Plan, partial_path
from labreport.record.files import load_measurement
from labreport.record.models import Environment, Measurement
from labreport.runtimes.base import Runtime


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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


def continue_from(
    partial: Measurement, active: Sequence[Runtime], plan: Plan
) -> tuple[Measurement, int]:
    """The partial result without its unfinished round, memory and checks; the next round (a
    round is finished when every runtime that takes part in it ran)."""
    result = partial.model_copy(deep=True)
    per_round: dict[int, set[str]] = {}
    for sample in result.samples:
        per_round.setdefault(sample.round, set()).add(sample.runtime)
    done = 0
    rounds = plan.rounds
    while done < rounds and per_round.get(done) == {
        runtime.name for runtime in active if plan.takes_part(runtime.name, done)
    }:
        done += 1
    result.samples = [s for s in result.samples if s.round < done]
    result.memory, result.checks = [], []
    result.partial, result.partial_reason = False, ""
    result.resumed_at.append(now_iso())
    return result, done


def same_builds(partial: Measurement, outcome: BuildOutcome) -> None:
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


def save_partial(result: Measurement, output: Path, reason: str) -> Path | None:
    """Keep what was measured, marked partial, beside (never over) the complete file; where."""
    if not result.samples and not result.artifacts:
        return None
    result.partial = True
    result.partial_reason = reason
    result.finished_at = now_iso()
    path = partial_path(output)
    fsutil.atomic_write_json(path, result.model_dump(mode="json"))
    return path


def unsaved(result: Measurement, output: Path, error: OSError | LabreportError) -> LabreportError:
    """A finished measurement whose file could not be written (a full disk, a name refused):
    every sample is kept under the state directory instead, and the error says where."""
    why = error.message if isinstance(error, LabreportError) else (error.strerror or str(error))
    stamp = "".join(c for c in result.finished_at if c.isdigit())[:14]
    kept = paths.made_state_dir() / "unsaved" / f"{output.stem[:64]}-{stamp}.json"
    try:
        fsutil.atomic_write_json(kept, result.model_dump(mode="json"))
    except OSError as second:
        return LabreportError(
            f"-o {output}: the measurement could not be written ({why}), nor kept in {kept} "
            f"({second.strerror})",
            "free space on both and measure again",
        )
    return LabreportError(
        f"-o {output}: the finished measurement could not be written ({why})",
        f"every sample is kept in {kept}: copy it where it belongs (cp {kept} measurements/)",
    )


def add_where_kept(error: LabreportError, partial: Path | None) -> None:
    """Add to the error's hint where what was measured was kept (or that nothing was)."""
    kept = (
        f"what was measured is kept in {partial} (add --resume to continue it)"
        if partial
        else "nothing was measured yet"
    )
    error.hint = f"{error.hint}; {kept}" if error.hint else kept


@dataclass
class Resume:
    """The run's way through its partial file: none to continue (plan.resume false), or the
    partial measurement it continues from first_round on."""

    plan: Plan
    partial: Measurement | None = None
    first_round: int = 0

    @classmethod
    def begin(
        cls, plan: Plan, config: LabConfig, fresh: Measurement, active: Sequence[Runtime]
    ) -> tuple[Resume, Measurement]:
        """The result the run fills: fresh, or (--resume) the partial one, checked to be what
        this run would measure, without its unfinished round."""
        if not plan.resume:
            return cls(plan), fresh
        names = {runtime.name for runtime in active}
        partial = resumable(plan, config, fresh.environment, names)
        result, first_round = continue_from(partial, active, plan)
        return cls(plan, partial, first_round), result

    def check_builds(self, outcome: BuildOutcome) -> None:
        if self.partial is not None:
            same_builds(self.partial, outcome)

    def failed(self, result: Measurement, failure: LabreportError) -> LabreportError:
        """The run stopped: what it measured is kept as the partial file, and the error's hint
        says where."""
        reason = (
            "interrupted (Ctrl-C or SIGTERM)"
            if isinstance(failure, RunInterruptedError)
            else failure.message
        )
        add_where_kept(failure, save_partial(result, self.plan.output, reason))
        return failure

    def write(self, result: Measurement) -> None:
        """The finished measurement, written atomically; a continued partial file has served."""
        result.finished_at = now_iso()
        try:
            fsutil.atomic_write_json(self.plan.output, result.model_dump(mode="json"))
        except (OSError, LabreportError) as error:
            raise unsaved(result, self.plan.output, error) from error
        if self.partial is not None:
            partial_path(self.plan.output).unlink(missing_ok=True)
