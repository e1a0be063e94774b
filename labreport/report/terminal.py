"""Tables for the terminal: measure's end-of-run summary, doctor's components, compare's rows.
They format what was computed elsewhere (the measurement, doctor's probes, compare's rows)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from statistics import median

import rich.console
import rich.table

from labreport.analysis.compare import Row, Side
from labreport.host.doctor import Component
from labreport.record.models import Measurement, MemoryRecord
from labreport.report.filters import fmt_ms, fmt_pct, fmt_times


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 1048576:.2f} MiB"


def summary(result: Measurement, output: Path) -> str:
    """A short table for the terminal; the report does the statistics properly."""
    width = max(len(record.name) for record in result.runtimes) if result.runtimes else 7
    lines = [f"wrote {output}", "", f"{'runtime':<{width}} {'valid':>9} {'median':>12}  notes"]
    for record in result.runtimes:
        if not record.available:
            lines.append(f"{record.name:<{width}} {'-':>9} {'-':>12}  unavailable: {record.reason}")
            continue
        measured = [s for s in result.samples if s.runtime == record.name and not s.warmup]
        valid = [s.wall_ns for s in measured if s.ok]
        middle = f"{median(valid) / 1e6:.2f} ms" if valid else "-"
        failed = len(measured) - len(valid)
        note = f"{failed} failed their check" if failed else ""
        lines.append(
            f"{record.name:<{width}} {len(valid):>4}/{len(measured):<4} {middle:>12}  {note}"
        )
    for name, reason in result.skipped_builds.items():
        lines.append(f"build {name} skipped: {reason}")
    for name, (idle, peak) in memory_summary(result.memory).items():
        lines.append(f"memory {name:<26} idle {_mib(idle)}, peak {_mib(peak)}")
    for memory in result.memory:
        if memory.linear_memory_bytes:
            lines.append(f"memory {memory.runtime:<26} linear {_mib(memory.linear_memory_bytes)}")
    for check in result.checks:
        lines.append(
            f"check {check.name} on {check.runtime}: {'ok' if check.ok else 'NO'}, {check.detail}"
        )
    for artifact in result.artifacts:
        lines.append(f"size {artifact.name:<24} {artifact.size_bytes:>12,} B")
    for image in result.images:
        lines.append(
            f"image {image.name}: content {image.content_size_uncompressed_bytes:,} B, "
            f"layers gz {image.layers_size_compressed_bytes:,} B, "
            f"archive {image.archive_size_bytes:,} B"
        )
    return "\n".join(lines)


def memory_summary(
    records: Sequence[MemoryRecord],
) -> dict[str, tuple[int | None, int | None]]:
    """Per runtime and mode: (median idle bytes, peak bytes); for the end-of-run table."""
    return {
        f"{record.runtime} ({record.mode})": (record.idle_median_bytes(), record.peak_bytes)
        for record in records
    }


def doctor_table(components: Sequence[Component]) -> str:
    rows = [("component", "status", "version", "detail")]
    for component in components:
        status = (
            "found"
            if component.found
            else "needs root"
            if component.needs_root
            else "optional"
            if component.optional
            else "MISSING"
        )
        detail = component.detail
        if not component.found and component.hint:
            detail = f"{detail} -> {component.hint}"
        rows.append((component.name, status, component.version or "-", detail))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        for row in rows
    )


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
