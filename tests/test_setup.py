"""`labreport setup --shims` with a stand-in cargo: the build says how far it is as it goes,
stopping setup stops the build, and a build that fails is one error with the end of its log.
Nothing is installed by any of them.

The stand-in answers `cargo build` and passes `cargo fetch` to the host's cargo (the shim's
patched dependency is taken from what it fetched); everything else setup runs is the host's
own. The state directory is a temporary one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labreport.host.shims import SHIM_DIR, SHIMS

from .conftest import alive

# A build writes its pid and one crate's artifact message, then lasts (sleep) or fails.
FAKE_CARGO = """#!/usr/bin/env bash
case "$1" in
  build)
    echo $$ >"$FAKE_DIR/build.pid"
    echo '{"reason":"compiler-artifact","package_id":"itoa 1.0.0","target":{"kind":["lib"]}}'
    if [ "$FAKE_BUILD" = fail ]; then echo "error[E0000]: the stand-in build failed" >&2; exit 1; fi
    exec sleep 300 ;;
  fetch)
    exec "$REAL_CARGO" "$@" ;;
esac
exit 2
"""


@pytest.fixture
def fake(tmp_path: Path) -> dict[str, str]:
    """The environment of a setup run whose cargo is the stand-in."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cargo = bin_dir / "cargo"
    cargo.write_text(FAKE_CARGO)
    cargo.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_DIR": str(tmp_path),
        "REAL_CARGO": shutil.which("cargo") or "cargo",
        "LABREPORT_STATE_DIR": str(tmp_path / "state"),
    }


def _setup(env: dict[str, str]) -> subprocess.Popen[str]:
    # SIGINT as a terminal's Ctrl-C delivers it: not ignored, as a background job's would be.
    return subprocess.Popen(
        ["env", "--default-signal=INT", sys.executable, "-m", "labreport", "setup", "--shims"],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _build_pid(tmp_path: Path, setup: subprocess.Popen[str]) -> int:
    pid_file = tmp_path / "build.pid"
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert setup.poll() is None, setup.communicate()
        assert time.monotonic() < deadline, "setup did not start the shim build in 120 s"
        time.sleep(0.1)
    return int(pid_file.read_text())


def _installed() -> dict[str, float]:
    """The installed shims' modification times: a stand-in build must change none."""
    return {
        s.binary: (SHIM_DIR / s.binary).stat().st_mtime
        for s in SHIMS
        if (SHIM_DIR / s.binary).exists()
    }


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_setup_stops_the_shim_build(
    fake: dict[str, str], tmp_path: Path, sig: signal.Signals
) -> None:
    before = _installed()
    setup = _setup(fake)
    try:
        build = _build_pid(tmp_path, setup)
        assert alive(build)
        setup.send_signal(sig)
        _, stderr = setup.communicate(timeout=60)
    finally:
        if setup.poll() is None:
            setup.kill()
            setup.communicate()
    assert setup.returncode == 130, stderr  # labreport's exit for an interrupted command
    assert "Traceback" not in stderr and stderr.splitlines()[-2].startswith("error: ")
    deadline = time.monotonic() + 10
    while alive(build) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(build), "the shim build outlived setup"
    assert _installed() == before


def test_the_shim_build_says_how_far_it_is(fake: dict[str, str], tmp_path: Path) -> None:
    setup = _setup(fake)
    try:
        _build_pid(tmp_path, setup)
        time.sleep(1.5)  # the first progress line comes at once, the crate's soon after
        setup.send_signal(signal.SIGTERM)
        _, stderr = setup.communicate(timeout=60)
    finally:
        if setup.poll() is None:
            setup.kill()
            setup.communicate()
    assert "setup: shims: building " in stderr
    assert re.search(r"^setup: shims: 1 crates built, \d+ s so far$", stderr, re.M)  # at once


def test_a_failed_shim_build_is_one_error_with_the_end_of_its_log(
    fake: dict[str, str], tmp_path: Path
) -> None:
    before = _installed()
    done = subprocess.run(
        [sys.executable, "-m", "labreport", "setup", "--shims"],
        env={**fake, "FAKE_BUILD": "fail"}, text=True, capture_output=True, timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-2].startswith("error: the shim build failed: "), done.stderr
    assert "the stand-in build failed" in lines[-2]  # the log's end, shown
    assert lines[-1].startswith("hint: the whole log: ")
    assert _installed() == before


def test_setup_without_cargo_skips_the_shims_and_says_what_that_costs(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = Path(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir), "LABREPORT_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [str(python), "-m", "labreport", "setup", "--shims"],
        env=env, text=True, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "setup: shims: skipped: cargo not found: install Rust with rustup" in done.stderr
    assert "ctr-wasmtime* and docker-wasm* runtimes are unavailable" in done.stderr
    strict = subprocess.run(
        [str(python), "-m", "labreport", "setup", "--shims", "--strict"],
        env=env, text=True, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert strict.returncode == 1
    assert strict.stderr.strip().splitlines()[-2] == "error: setup left out: shims"


def test_setup_on_a_system_without_apt_names_what_to_install(tmp_path: Path) -> None:
    """Another distribution (no apt-get, no dpkg, no cargo on PATH): every step is skipped with
    the reason, the packages step names the commands to install; nothing fails."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {**os.environ, "PATH": str(bin_dir), "LABREPORT_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-m", "labreport", "setup"],
        env=env, text=True, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("setup: packages: skipped: not a Debian/Ubuntu system (no apt-get)")
    assert (
        "ctr, buildah, hyperfine, hey, clang, pipx (clang with WASI's libc), and Rust" in lines[0]
    )
    assert lines[1].startswith("setup: engine: skipped: ")
    assert lines[2].startswith("setup: shims: skipped: cargo not found")
    assert "Traceback" not in done.stderr
    assert len(lines) == 3  # the browser only when asked for
    browser = subprocess.run(
        [sys.executable, "-m", "labreport", "setup", "--browser"],
        env=env, text=True, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert browser.stderr.splitlines() == [
        "setup: browser: skipped: not a Debian/Ubuntu system (no apt-get): install with your "
        "distribution's packages Chromium and its chromedriver; until then the test suite cannot "
        "check the report in a browser (labreport itself needs none)"
    ]
