"""Test doubles shared by the unit tests: a fixed environment and a no-op builder."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from labreport.build.plan import BuildOutcome
from labreport.config import LabConfig
from labreport.host.endpoints import ContainerdEndpoint, Endpoints, EngineEndpoint
from labreport.record.models import Environment
from labreport.runtimes.base import RunContext
from labreport.runtimes.fake import FakeRuntime as PlainFakeRuntime


def moscow_json(now: float) -> str:
    """What the default lab's program prints (its check rules accept it)."""
    moscow = datetime.fromtimestamp(int(now), timezone(timedelta(hours=3)))
    return (
        json.dumps({"moscow_time": moscow.strftime("%Y-%m-%d %H:%M:%S MSK"), "timestamp": int(now)})
        + "\n"
    )


@dataclass
class FakeRuntime(PlainFakeRuntime):
    """The fake runtime printing what the default lab's rules accept."""

    output: Callable[[float], str] = moscow_json


# Endpoints no fake runtime talks to: unit tests never reach an engine or a containerd.
NOWHERE = Endpoints(
    EngineEndpoint("unix:///nonexistent/docker.sock", "host"),
    ContainerdEndpoint(None, "none (unit tests)"),
)


def environment() -> Environment:
    return Environment(
        host="testhost",
        kernel="6.1.0",
        os="Debian GNU/Linux 12",
        cpu_model="Test CPU",
        cpu_cores=2,
        memory_total_bytes=24 * 2**30,
        python_version="3.11.7",
        labreport_version="0.1.0",
        go_version="1.25.5",
        engine={"storage_driver": "overlay2"},
        tool_versions={"hyperfine": "1.15.0"},
        source_sha256={"main.go": "0" * 64},
        lab_config_sha256="1" * 64,
    )


def no_build(
    config: LabConfig,
    ctx: RunContext,
    needs: frozenset[str],
    workdir: Path,
    undo: contextlib.ExitStack,
) -> BuildOutcome:
    return BuildOutcome(commands=["(no build: fake runtimes)"])


SYNTHETIC = Path(__file__).resolve().parent / "fixtures" / "synthetic.json"


def synthetic_variant(
    path: Path,
    factors: dict[str, float] | None = None,
    lab: str = "",
    engine: dict[str, str] | None = None,
) -> Path:
    """The synthetic fixture (made-up data) with some runtimes' samples multiplied, another lab
    name or another engine, written to path."""
    data = json.loads(SYNTHETIC.read_text())
    for sample in data["samples"]:
        sample["wall_ns"] = int(sample["wall_ns"] * (factors or {}).get(sample["runtime"], 1.0))
    if lab:
        data["lab"] = lab
    if engine is not None:
        data["environment"]["engine"] = engine
    path.write_text(json.dumps(data))
    return path
