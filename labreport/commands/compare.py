"""`labreport compare OLD NEW`: startup of every runtime in NEW against OLD (medians, the ratio
with its interval, the verdict of an unpaired test); a gate for a course's CI."""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

from labreport.analysis import compare
from labreport.errors import LabreportError


@dataclass(frozen=True)
class Comparison:
    old: compare.Side
    new: compare.Side
    rows: list[compare.Row]


def run(old: Path, new: Path, fail_above: float | None = None) -> Comparison:
    """The comparison; a --fail-above factor is checked first, before any file is read."""
    if fail_above is not None and not math.isfinite(fail_above):
        raise LabreportError(
            f"--fail-above {fail_above}: not a finite factor", "give a factor such as 1.10"
        )
    with contextlib.suppress(OSError):
        if old.exists() and new.exists() and os.path.samefile(old, new):
            raise LabreportError(
                f"OLD and NEW are the same {'folder' if old.is_dir() else 'file'} ({old})",
                "compare two measurements: a file against itself shows no difference by design",
            )
    before, after = compare.side(old), compare.side(new)
    return Comparison(before, after, compare.compare(before, after))


def gate(comparison: Comparison, fail_above: float) -> None:
    """--fail-above: a runtime significantly slower by more than the factor, or one OLD measured
    that has no valid run in NEW, is an error (exit 1)."""
    compare.fail_above(comparison.rows, fail_above, comparison.new)
