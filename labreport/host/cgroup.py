"""cgroup v1 memory files: where a task's or a container's cgroup is, and what it reads."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_MEMORY_ROOT = CGROUP_ROOT / "memory"
PRIVATE_CGROUP_PARENT = "labreport-engine"  # the private engine's daemon-wide cgroup-parent


def task_cgroup(namespace: str, container_id: str) -> Path:
    """cgroup v1 memory directory of a ctr task (containerd's default path /<ns>/<id>)."""
    return CGROUP_MEMORY_ROOT / namespace / container_id


def container_cgroup(
    container_id: str, host_config: Mapping[str, Any], default_parent: str
) -> Path:
    """cgroup v1 memory directory of a Docker container: its own parent, else the engine's
    (the private engine's daemon-wide one, or Docker's default `docker` with cgroupfs)."""
    parent = host_config.get("CgroupParent") or default_parent
    return CGROUP_MEMORY_ROOT / str(parent).strip("/") / container_id


def cgroup_peak_bytes(directory: Path) -> int:
    return int((directory / "memory.max_usage_in_bytes").read_text())


def cgroup_usage_bytes(directory: Path) -> int:
    """Usage minus inactive file cache: the formula docker stats uses, read from the files."""
    usage = int((directory / "memory.usage_in_bytes").read_text())
    stats = dict(
        line.split() for line in (directory / "memory.stat").read_text().splitlines() if line
    )
    inactive = int(stats.get("total_inactive_file", stats.get("inactive_file", "0")))
    return max(0, usage - inactive)


def remove_cgroups(parent_name: str = PRIVATE_CGROUP_PARENT) -> None:
    """A cgroup-parent's directories, once empty (children first), in every hierarchy (v1's
    <controller>/<name>, v2's <name>)."""
    for parent in [*CGROUP_ROOT.glob(f"*/{parent_name}"), CGROUP_ROOT / parent_name]:
        for directory in sorted(parent.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if directory.is_dir():
                with contextlib.suppress(OSError):
                    directory.rmdir()
        with contextlib.suppress(OSError):
            parent.rmdir()
