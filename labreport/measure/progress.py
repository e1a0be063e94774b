"""Progress of a measurement: what the run reports, and the bars that show it on stderr (one
per phase with the current runtime and run count)."""

from __future__ import annotations

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


class BarProgress:
    def __init__(self) -> None:
        self._bars = Bars(
            TextColumn("{task.fields[phase]:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._task: TaskID | None = None
        self._started = False

    def phase(self, name: str, total: int) -> None:
        if not self._started:
            self._bars.start()
            self._started = True
        if self._task is not None:
            self._bars.update(self._task, description="done")
        self._task = self._bars.add_task("", total=total, phase=name)

    def step(self, detail: str) -> None:
        if self._task is not None:
            self._bars.update(self._task, description=detail, advance=1)

    def done(self) -> None:
        if self._started:
            if self._task is not None:
                self._bars.update(self._task, description="done")
            self._bars.stop()
            self._started = False
