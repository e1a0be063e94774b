"""`labreport compare OLD NEW`: startup of every runtime in NEW against OLD (medians, the ratio
with its interval, the verdict of an unpaired test); a gate for a course's CI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labreport.analysis import compare


@dataclass(frozen=True)
class Comparison:
    old: compare.Side
    new: compare.Side
    rows: list[compare.Row]


def run(old: Path, new: Path) -> Comparison:
    before, after = compare.side(old), compare.side(new)
    return Comparison(before, after, compare.compare(before, after))


def gate(comparison: Comparison, fail_above: float) -> None:
    """--fail-above: a runtime significantly slower by more than the factor is an error (exit 1)."""
    compare.fail_above(comparison.rows, fail_above)
