"""What the commands print on the terminal: build's sizes, measure's end-of-run summary,
doctor's components. They format what was computed elsewhere (compare's table is in
compare_table.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from statistics import median

from labreport.build.plan import LabBuild
from labreport.inventory.components import Component
from labreport.record.models import Measurement, MemoryRecord


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


def build_summary(built: LabBuild) -> str:
    """What `build` made, a line each: skipped builds, host builds, the image, the binary in it."""
    lines = [f"{name:<8} {'skipped':>14}  {reason}" for name, reason in built.skipped.items()]
    lines += [
        f"{artifact.build:<8} {artifact.size_bytes:>12,} B  {artifact.path}"
        for artifact in built.artifacts
    ]
    record = built.image
    lines.append(
        f"{'image':<8} {record.content_size_uncompressed_bytes:>12,} B  {built.tag} "
        f"({record.image_id[:19]}): files in its layers; layers gzip "
        f"{record.layers_size_compressed_bytes:,} B; "
        f"docker save {record.archive_size_bytes:,} B"
    )
    lines.append(
        f"{'in image':<8} {built.binary_in_image_bytes:>12,} B  {built.binary_path} "
        f"({'identical to' if built.identical else 'DIFFERENT from'} the host "
        f"{built.reference_build} build)"
    )
    return "\n".join(lines)
