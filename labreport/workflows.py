"""Each command's work as a plain function that tests call directly."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from statistics import median

from labreport import (
    build,
    engine,
    environment,
    measure,
    private_containerd,
    private_engine,
    sizes,
    tools,
)
from labreport.config import LabConfig
from labreport.errors import LabreportError
from labreport.models import Measurement
from labreport.progress import BarProgress
from labreport.runtimes import Runtime
from labreport.runtimes.registry import REGISTRY

LAB_IMAGE_ROLE = "lab-image"


def build_all(config: LabConfig) -> str:
    """Host builds plus the scratch image (kept, tagged :latest); a short summary to print."""
    out_dir = tools.state_dir() / "artifacts" / config.name
    lines = []
    artifacts = {}
    for name in config.builds:
        reason = build.unavailable(config, name)
        if reason:
            lines.append(f"{name:<8} {'skipped':>14}  {reason}")
        else:
            artifacts[name] = build.go_build(config, name, out_dir)
    for artifact in artifacts.values():
        lines.append(f"{artifact.build:<8} {artifact.size_bytes:>12,} B  {artifact.path}")
    client = engine.connect()
    try:
        tag = f"{config.image.repository}:latest"
        image_id, _command = build.build_image(
            client, config, tag, {build.LABEL_ROLE: LAB_IMAGE_ROLE}
        )
        inner = build.file_from_image(client, image_id, config.image.binary_path, {})
        reference = artifacts[config.image.same_as_build]
        same = build.sha256_bytes(inner) == reference.sha256
        with tempfile.TemporaryDirectory(dir=tools.state_dir()) as scratch:
            record = sizes.docker_image_record(
                client, "traditional", tag, image_id, "", Path(scratch) / "image.tar"
            )
        lines.append(
            f"{'image':<8} {record.content_size_uncompressed_bytes:>12,} B  {tag} "
            f"({image_id[:19]}): files in its layers; layers gzip "
            f"{record.layers_size_compressed_bytes:,} B; "
            f"docker save {record.archive_size_bytes:,} B"
        )
        lines.append(
            f"{'in image':<8} {len(inner):>12,} B  {config.image.binary_path} "
            f"({'identical to' if same else 'DIFFERENT from'} the host {reference.build} build)"
        )
    finally:
        client.close()
    return "\n".join(lines)


def measure_lab(
    config: LabConfig,
    config_path: Path,
    plan: measure.Plan,
    registry: dict[str, Callable[[], Runtime]] | None = None,
    containerd: private_containerd.Mode = "auto",
    engine_mode: private_engine.Mode = "auto",
) -> Measurement:
    """The measurement on the engine that can run what was asked for (see private_engine), or
    on the target engine the user named (plan.target)."""
    registry = registry or REGISTRY
    names = [n for n in (plan.include or tuple(registry)) if n not in plan.skip]
    wanted = any(getattr(registry.get(n), "uses_containerd", False) for n in names)
    needs_store = any(getattr(registry.get(n), "needs_containerd_store", False) for n in names)
    if plan.target:
        if engine_mode == "private":
            raise LabreportError(
                "--engine private and a target engine (--docker-host, --context) both chosen",
                "give one of them",
            )
        engine_mode = "host"  # the named engine is the one to measure
    health: Callable[[], None] | None = None
    with contextlib.ExitStack() as around:
        if plan.target:
            health = engine.same_engine_check(plan.target)  # raises now if it does not answer
            around.enter_context(tools.using_engine(plan.target, plan.target_source))
        started = around.enter_context(private_engine.as_needed(engine_mode, needs_store))
        if started is not None:
            health = started.check_alive
        facts = {} if started is None else {"private_start_seconds": f"{started.start_seconds:.2f}"}
        around.enter_context(private_containerd.as_needed(containerd, wanted and not plan.target))
        return measure.measure(
            config,
            plan,
            registry,
            environment=lambda: environment.collect(config, config_path, facts),
            progress=BarProgress(),
            health=health,
        )


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
    for name, (idle, peak) in measure.memory_summary(result.memory).items():
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
