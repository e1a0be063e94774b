"""Progress of a measurement: what the run reports, and the bars that show it on stderr (one
per phase with the current runtime and run count, and an estimate of what remains)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as Bars


class Progress(Protocol):
    def phase(self, name: str, total: int, steps_by_key: Mapping[str, int] | None = None) -> None:
        """A new phase of total steps; steps_by_key (e.g. runs per runtime) lets the estimate
        of what remains weigh each kind of step by its own pace."""

    def step(self, detail: str, key: str = "") -> None: ...

    def done(self) -> None: ...


class SilentProgress:
    def phase(self, name: str, total: int, steps_by_key: Mapping[str, int] | None = None) -> None:
        pass

    def step(self, detail: str, key: str = "") -> None:
        pass

    def done(self) -> None:
        pass


@dataclass
class Pace:
    """What remains of a phase, in seconds: each kind of step (a runtime's run) at the mean
    duration of its steps so far; a kind not yet seen at the mean of all."""

    left: dict[str, int] = field(default_factory=dict)  # steps still to come, by key
    seconds: dict[str, list[float]] = field(default_factory=dict)
    _current: tuple[str, float] | None = None

    def step(self, key: str, now: float) -> None:
        self.finish(now)
        self.left[key] = max(0, self.left.get(key, 0) - 1)
        self._current = (key, now)

    def finish(self, now: float) -> None:
        """The step under way has ended (the next began, or the phase did)."""
        if self._current is not None:
            key, began = self._current
            self.seconds.setdefault(key, []).append(now - began)
            self._current = None

    def remaining_s(self) -> float | None:
        every = [s for durations in self.seconds.values() for s in durations]
        if not every:
            return None
        overall = sum(every) / len(every)
        return sum(
            count
            * (sum(self.seconds[key]) / len(self.seconds[key]) if key in self.seconds else overall)
            for key, count in self.left.items()
        )


def shown_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, rest = divmod(round(seconds), 60)
    return f"~{minutes} min {rest:02d} s left" if minutes else f"~{rest} s left"


class BarProgress:
    def __init__(self) -> None:
        self._bars = Bars(
            TextColumn("{task.fields[phase]:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[left]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: TaskID | None = None
        self._started = False
        self._pace = Pace()

    def phase(self, name: str, total: int, steps_by_key: Mapping[str, int] | None = None) -> None:
        if not self._started:
            self._bars.start()
            self._started = True
        if self._task is not None:
            self._bars.update(self._task, description="done", left="")
        self._pace = Pace(left=dict(steps_by_key or {"": total}))
        self._task = self._bars.add_task("", total=total, phase=name, left="")

    def step(self, detail: str, key: str = "") -> None:
        if self._task is not None:
            self._pace.step(key, time.monotonic())
            left = shown_duration(self._pace.remaining_s())
            self._bars.update(self._task, description=detail, advance=1, left=left)

    def done(self) -> None:
        if self._started:
            if self._task is not None:
                self._bars.update(self._task, description="done", left="")
            self._bars.stop()
            self._started = False
