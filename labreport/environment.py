"""The environment a measurement was taken in: host, kernel, CPU, engine, tools, sources."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

from labreport import __version__, build, doctor, engine, tools
from labreport.config import LabConfig
from labreport.errors import LabreportError
from labreport.models import Environment


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total_bytes() -> int | None:
    """None where /proc/meminfo cannot tell: never a made-up figure."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _engine_facts() -> dict[str, Any]:
    try:
        client = engine.connect(timeout_s=20)
    except LabreportError as error:
        return {
            "source": engine.engine_source(),
            "url": engine.engine_url(),
            "available": "no",
            "reason": error.message,
        }
    try:
        return engine.engine_facts(client)
    finally:
        client.close()


def _containerd_facts() -> dict[str, str]:
    from labreport.containerd import Ctr

    try:
        ctr = Ctr.find()
        version = ctr.version()
    except LabreportError as error:
        return {"available": "no", "reason": error.message}
    return {
        "available": "yes",
        "socket": str(ctr.socket),
        "source": tools.containerd_source(ctr.socket),
        "version": version,
        "namespace": ctr.namespace,
    }


def collect(
    config: LabConfig, config_path: Path, engine_extra: dict[str, str] | None = None
) -> Environment:
    tool_versions = {c.name: c.version for c in doctor.diagnose() if c.found and c.version}
    release = (
        platform.freedesktop_os_release() if hasattr(platform, "freedesktop_os_release") else {}
    )
    return Environment(
        host=platform.node(),
        kernel=platform.release(),
        os=release.get("PRETTY_NAME", platform.system()),
        cpu_model=_cpu_model(),
        cpu_cores=os.cpu_count() or 1,
        memory_total_bytes=_memory_total_bytes(),
        python_version=sys.version.split()[0],
        labreport_version=__version__,
        go_version=build.go_version(),
        engine={**_engine_facts(), **(engine_extra or {})},
        containerd=_containerd_facts(),
        tool_versions=tool_versions,
        source_sha256=build.source_hashes(config),
        lab_config_sha256=build.sha256_file(config_path),
    )
