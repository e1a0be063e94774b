"""The facts of the environment a measurement is taken in: host, kernel, CPU, engine, tools
and the sources' hashes."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

from labreport import __version__, bundle
from labreport.config import LabConfig
from labreport.errors import LabreportError
from labreport.host import engine, fsutil, paths
from labreport.host.containerd import Ctr
from labreport.host.endpoints import ContainerdEndpoint, Endpoints, EngineEndpoint
from labreport.inventory import components
from labreport.record.models import Environment, InstallRecord


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


def _engine_facts(endpoint: EngineEndpoint) -> dict[str, Any]:
    try:
        client = engine.connect(timeout_s=20, url=endpoint.url)
    except LabreportError as error:
        return {
            "source": endpoint.source,
            "url": endpoint.url,
            "available": "no",
            "reason": error.message,
        }
    try:
        return engine.engine_facts(client, endpoint)
    finally:
        client.close()


def _containerd_facts(endpoint: ContainerdEndpoint) -> dict[str, str]:
    try:
        ctr = Ctr.find(endpoint)
        version = ctr.version()
    except LabreportError as error:
        return {"available": "no", "reason": error.message}
    return {
        "available": "yes",
        "socket": str(ctr.socket),
        "source": endpoint.source,
        "version": version,
        "namespace": ctr.namespace,
    }


def source_hashes(config: LabConfig) -> dict[str, str]:
    hashes = {}
    for name in config.sources:
        path = config.app_path / name
        if not path.is_file():
            raise LabreportError(
                f"source file {path} listed in the lab config is missing",
                "restore it or fix 'sources' in the lab config",
            )
        hashes[name] = fsutil.sha256_file(path)
    return hashes


def collect(
    config: LabConfig,
    config_path: Path,
    endpoints: Endpoints,
    engine_extra: dict[str, str] | None = None,
) -> Environment:
    found = components.diagnose(endpoints, config)  # the lab's own build tools too
    found_install = bundle.install()
    tool_versions = {c.name: c.version for c in found if c.found and c.version}
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
        labreport_install=InstallRecord(
            kind=found_install.kind, commit=found_install.commit, modified=found_install.modified
        ),
        go_version=paths.go_version(),
        engine={**_engine_facts(endpoints.engine), **(engine_extra or {})},
        containerd=_containerd_facts(endpoints.containerd),
        tool_versions=tool_versions,
        source_sha256=source_hashes(config),
        lab_config_sha256=fsutil.sha256_file(config_path),
    )
