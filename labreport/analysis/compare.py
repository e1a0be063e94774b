"""`labreport compare OLD NEW`: is NEW faster or slower than OLD, runtime by runtime?

Two measurements are separate runs (other rounds, maybe another host or engine), so their samples
do not pair: the verdict is Mann-Whitney U with a Hodges-Lehmann ratio (stats.unpaired), and a
difference is called only when the test rejects and the ratio is at least the minimum effect
away from 1. Like pyperf's compare_to, with labreport's verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from labreport.analysis import stats
from labreport.analysis.sources import default_sources, load_sources
from labreport.analysis.startup import RuntimeView, runtime_views, target_identity
from labreport.errors import LabreportError, SlowdownError


@dataclass(frozen=True)
class Side:
    """One side of a comparison: its files, what they were measured on, and the runtimes."""

    label: str
    paths: tuple[str, ...]
    views: dict[str, RuntimeView]
    lab: str = ""
    failed: tuple[str, ...] = ()  # runtimes with runs but not one valid sample


@dataclass(frozen=True)
class Row:
    runtime: str
    old_median_ms: float | None
    new_median_ms: float | None
    result: stats.Comparison | None  # None when a side has no valid sample of the runtime

    def slower_than(self, factor: float) -> bool:
        """Significantly slower (a verdict, not a point estimate alone) by more than factor."""
        return (
            self.result is not None
            and self.result.verdict is stats.Verdict.SLOWER
            and self.result.ratio > factor
        )


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return default_sources(path)
    return [path]


def side(path: Path) -> Side:
    """A file, or a folder of complete measurement files of one lab."""
    sources = load_sources(_files(path))
    labs = {source.measurement.lab for source in sources}
    if len(labs) > 1:
        raise LabreportError(
            f"{path}: files of different labs ({', '.join(sorted(labs))})",
            "compare the files of one lab",
        )
    _, label = target_identity(sources[0].measurement)
    partial = [source for source in sources if source.measurement.partial]
    if partial:  # said where the figures are read: they cover only the rounds that ran
        reasons = {source.measurement.partial_reason or "interrupted" for source in partial}
        label += f"; PARTIAL ({'; '.join(sorted(reasons))}): only the rounds that ran"
    views = runtime_views(sources)
    measured = {name: view for name, view in views.items() if view.valid_ms}
    failed = tuple(name for name, view in views.items() if view.failed and not view.valid_ms)
    return Side(label, tuple(s.path for s in sources), measured, labs.pop(), failed)


def compare(old: Side, new: Side) -> list[Row]:
    """A row per runtime measured on either side, in the order OLD lists them, then NEW's."""
    if old.lab != new.lab:
        raise LabreportError(
            f"OLD is lab {old.lab} and NEW is lab {new.lab}: their runtimes run other programs",
            "compare two measurements of one lab",
        )
    if not old.views and not new.views:
        raise LabreportError("neither side has a valid sample", "measure first")
    names = list(old.views) + [name for name in new.views if name not in old.views]
    rows = []
    for name in names:
        before, after = old.views.get(name), new.views.get(name)
        result = None
        if before is not None and after is not None:
            result = stats.unpaired(after.valid_ms, before.valid_ms)
        rows.append(
            Row(
                name,
                before.startup.median if before and before.startup else None,
                after.startup.median if after and after.startup else None,
                result,
            )
        )
    return rows


def fail_above(rows: Sequence[Row], factor: float, new: Side) -> None:
    """`--fail-above`: raises SlowdownError when a runtime is significantly slower in NEW by
    more than factor, or when a runtime OLD measured has no valid run in NEW (whose speed no
    gate can vouch for)."""
    lost = [
        f"{row.runtime} ({'every run failed' if row.runtime in new.failed else 'not run'})"
        for row in rows
        if row.old_median_ms is not None and row.new_median_ms is None
    ]
    slower = [row.runtime for row in rows if row.slower_than(factor)]
    problems = (
        [f"significantly slower than {factor:g}x OLD: {', '.join(slower)}"] if slower else []
    ) + ([f"no valid run in NEW: {', '.join(lost)}"] if lost else [])
    if problems:
        raise SlowdownError(
            "; ".join(problems), "look at what changed between the two measurements"
        )
