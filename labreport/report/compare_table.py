"""compare's rows, exported: a Markdown table (for a course's CI log or a pull request) or a
rich table on the terminal; both from the rows analysis/compare.py computed once."""

from __future__ import annotations

from collections.abc import Sequence

import rich.console
import rich.table

from labreport.analysis.compare import Row, Side
from labreport.report.filters import fmt_ms, fmt_pct, fmt_times


def _verdict(row: Row) -> str:
    if row.result is None:
        return "only in OLD" if row.new_median_ms is None else "only in NEW"
    if row.result.significant:
        return f"NEW {row.result.verdict} ({fmt_pct(row.result.percent)})"
    return f"no difference shown: {row.result.reason}"


def _ratio(row: Row) -> str:
    if row.result is None:
        return "-"
    interval = row.result.interval
    return (
        f"{fmt_times(row.result.ratio)} ({fmt_times(interval.low)} – "  # noqa: RUF001
        f"{fmt_times(interval.high)}, {interval.coverage_text()})"
    )


def cells(row: Row) -> tuple[str, str, str, str, str]:
    return (
        row.runtime,
        fmt_ms(row.old_median_ms) if row.old_median_ms is not None else "-",
        fmt_ms(row.new_median_ms) if row.new_median_ms is not None else "-",
        _ratio(row),
        _verdict(row),
    )


HEADERS = ("runtime", "OLD median", "NEW median", "NEW / OLD (interval, coverage)", "verdict")


def markdown(old: Side, new: Side, rows: Sequence[Row]) -> str:
    lines = [
        f"OLD: {old.label} ({', '.join(old.paths)})",
        f"NEW: {new.label} ({', '.join(new.paths)})",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|---|---:|---:|---|---|",
    ]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def compare_table(old: Side, new: Side, rows: Sequence[Row]) -> None:
    """compare's rows as a rich table on stdout."""
    table = rich.table.Table(title=f"OLD: {old.label}\nNEW: {new.label}")
    for header in HEADERS:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*cells(row))
    rich.console.Console(width=160).print(table)
