"""scripts/setup's background shim build, with a stand-in cargo: stopping setup stops the build,
and a build that fails is one error with the end of its log.

Setup runs for real against this host (its Debian packages, engine, private engine packages and
venv are present, as the test command's own setup made them); only cargo is replaced, and the
state directory is a temporary one that reuses the private engine's unpacked packages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from labreport.host import paths

from .conftest import ROOT, alive, must_have_everything

SETUP = ROOT / "scripts" / "setup"
# Fetches at once; a build writes its pid, then lasts (sleep) or fails (exit 1).
FAKE_CARGO = """#!/usr/bin/env bash
case "$1" in
  fetch) exit 0 ;;
  build)
    echo $$ >"$FAKE_DIR/build.pid"
    if [ "$FAKE_BUILD" = fail ]; then echo "error[E0000]: the stand-in build failed" >&2; exit 1; fi
    exec sleep 300 ;;
esac
exit 2
"""


@pytest.fixture
def fake(tmp_path: Path) -> dict[str, str]:
    """The environment of a setup run whose cargo is the stand-in."""
    engine_pkg = paths.state_dir() / "engine"
    venv = ROOT / ".venv"
    if not (engine_pkg / "pkg.stamp").exists() or not (venv / "bin" / "python").exists():
        reason = "setup has not run on this host (no private engine packages or no .venv)"
        if must_have_everything():
            pytest.fail(f"{reason}; CI expects scripts/setup to have provided them")
        pytest.skip(reason)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    cargo = bin_dir / "cargo"
    cargo.write_text(FAKE_CARGO)
    cargo.chmod(0o755)
    state = tmp_path / "state"
    (state / "engine").mkdir(parents=True)
    (state / "engine" / "pkg").symlink_to(engine_pkg / "pkg")
    (state / "engine" / "pkg.stamp").write_bytes((engine_pkg / "pkg.stamp").read_bytes())
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "FAKE_DIR": str(tmp_path),
        "LABREPORT_STATE_DIR": str(state),
        "LABREPORT_VENV": str(venv),
        "LABREPORT_SHIM_DIR": str(tmp_path / "shims"),
    }


def _build_pid(tmp_path: Path, setup: subprocess.Popen[str]) -> int:
    pid_file = tmp_path / "build.pid"
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert setup.poll() is None, setup.communicate()
        assert time.monotonic() < deadline, "setup did not start the shim build in 120 s"
        time.sleep(0.1)
    return int(pid_file.read_text())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_setup_stops_the_background_shim_build(
    fake: dict[str, str], tmp_path: Path, sig: signal.Signals
) -> None:
    # SIGINT as a terminal's Ctrl-C delivers it: not ignored, as a background job's would be
    # (env execs setup, so its pid is setup's).
    setup = subprocess.Popen(
        ["env", "--default-signal=INT", str(SETUP)],
        env=fake,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        build = _build_pid(tmp_path, setup)
        assert alive(build)
        setup.send_signal(sig)
        _, stderr = setup.communicate(timeout=60)
    finally:
        if setup.poll() is None:
            setup.kill()
            setup.communicate()
    assert setup.returncode == 128 + sig, stderr
    deadline = time.monotonic() + 10
    while alive(build) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(build), "the shim build outlived setup"
    assert not (tmp_path / "shims").exists()  # nothing installed


def test_a_failed_shim_build_is_one_error_with_the_end_of_its_log(
    fake: dict[str, str], tmp_path: Path
) -> None:
    done = subprocess.run(
        [str(SETUP)],
        env={**fake, "FAKE_BUILD": "fail"},
        text=True,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("setup: error: building the shims failed"), done.stderr
    assert "the stand-in build failed" in done.stderr  # the log's end, shown
    assert not (tmp_path / "shims").exists()
