"""labreport as a user installs it: the wheel built from this checkout, installed with Debian's
pipx into a folder of its own (the checkout nowhere on sys.path or PATH), run in an empty folder:
`setup --shims`, `init`, `doctor`, `measure` (a quick runtime set with a WASM runtime through
the shims), `render`, `render --check`, `clean --check`. Then the same as a throwaway user in
the docker group, with the runtimes that need no root. Nothing of the checkout's path is in the
installed package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labreport.record.files import load_measurement

from ..conftest import ROOT, must_have_everything, require
from .common import NOTHING, engine_gained, engine_holds, throwaway_user

pytestmark = pytest.mark.docker
ROOT_RUNTIMES = ("native", "docker-api", "wasmtime-embedded", "ctr-wasmtime-aot")
USER_RUNTIMES = ("native", "docker-api", "wasmtime-embedded")


@dataclass(frozen=True)
class Tool:
    """labreport installed by pipx: its command, and the package's folder."""

    command: Path
    package: Path


@pytest.fixture(scope="module")
def tool() -> Iterator[Tool]:
    if shutil.which("pipx") is None or os.geteuid() != 0:
        reason = "Debian's pipx is missing, or this is not root"
        if must_have_everything():
            pytest.fail(f"{reason}; CI expects scripts/setup to have provided it, as root")
        pytest.skip(reason)
    require("docker-engine")
    work = Path(tempfile.mkdtemp(prefix="labreport-installed-"))
    work.chmod(0o755)  # the throwaway user runs the same install
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
             str(work / "dist"), str(ROOT)],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        (wheel,) = (work / "dist").glob("labreport-*.whl")
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": os.environ["HOME"],
            "PIPX_HOME": str(work / "pipx"),
            "PIPX_BIN_DIR": str(work / "bin"),
            "PIPX_MAN_DIR": str(work / "man"),
        }
        done = subprocess.run(
            ["pipx", "install", str(wheel)],
            env=env, capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        (package,) = (work / "pipx" / "venvs" / "labreport").glob(
            "lib/python3*/site-packages/labreport"
        )
        yield Tool(work / "bin" / "labreport", package)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _env(home: str) -> dict[str, str]:
    """A user's environment: no venv, no PYTHONPATH, the checkout nowhere; root keeps cargo."""
    cargo = f"{home}/.cargo/bin:" if Path(home, ".cargo", "bin").is_dir() else ""
    return {"HOME": home, "PATH": f"{cargo}/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


class Run:
    """The installed command as a user (root: None), in a folder."""

    def __init__(self, tool: Tool, user: str | None, home: str) -> None:
        self.tool, self.user, self.home = tool, user, home

    def __call__(
        self, cwd: Path, *args: str, timeout_s: float = 600
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.tool.command), *args]
        env = _env(self.home)
        if self.user is not None:
            argv = [shutil.which("runuser") or "runuser", "-u", self.user, "--", "env", "-i",
                    *(f"{k}={v}" for k, v in env.items()), *argv]  # fmt: skip
        return subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s,
            check=False,
        )  # fmt: skip


def _flow(run: Run, folder: Path, runtimes: tuple[str, ...]) -> None:
    """init (a new folder), then in it: doctor, measure, render, render --check, clean --check."""
    made = run(folder.parent, "init", folder.name)
    assert made.returncode == 0, made.stderr
    doctor = run(folder, "doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    measured = run(
        folder, "measure", "--runtime", ",".join(runtimes), "--runs", "2", "--warmup", "1",
        "--no-memory", "--no-serving", timeout_s=1500,
    )  # fmt: skip
    assert measured.returncode == 0, measured.stdout + measured.stderr
    (written,) = (folder / "measurements").glob("*.json")
    result = load_measurement(written)
    install = result.environment.labreport_install
    assert install is not None and install.kind == "wheel" and install.commit is None
    for runtime in runtimes:
        samples = [s for s in result.samples if s.runtime == runtime]
        assert len(samples) == 3 and all(s.ok for s in samples), (runtime, samples)
    for argv in (["render"], ["render", "--check"], ["clean", "--check"]):
        done = run(folder, *argv)
        assert done.returncode == 0, (argv, done.stdout + done.stderr)
    assert (folder / "report.md").read_text().startswith("# ")


def test_the_installed_tool_does_the_lab_in_an_empty_folder_as_root(
    tool: Tool, tmp_path: Path
) -> None:
    require("containerd-shim-wasmtime-aot-v1")
    run = Run(tool, None, os.environ["HOME"])
    version = run(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("labreport 0.1.0 (wheel: ")
    setup = run(tmp_path, "setup", "--shims", "--strict", timeout_s=1800)
    assert setup.returncode == 0, setup.stderr
    assert f"building {tool.package}/_data/shim with cargo" in setup.stderr  # the packaged crate
    before = engine_holds()
    try:
        _flow(run, tmp_path / "student", ROOT_RUNTIMES)
        assert engine_gained(before) == NOTHING
    finally:  # the stage cache its build keeps, as for any lab: this lab is the test's alone
        subprocess.run(
            ["docker", "image", "rm", "labreport/stage-cache:student-0"],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip


def test_the_installed_package_names_no_checkout_path(tool: Tool) -> None:
    found = subprocess.run(
        ["grep", "-rlF", str(ROOT), str(tool.package)], capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert found.returncode == 1, found.stdout  # 1: nothing found
    assert (tool.package / "_data" / "labs" / "c-primes" / "app" / "primes.c").is_file()
    assert not list(tool.package.rglob("measurements"))


def test_the_installed_tool_does_the_lab_as_a_user_in_the_docker_group(tool: Tool) -> None:
    with throwaway_user() as (name, home):
        before = engine_holds()
        _flow(Run(tool, name, str(home)), home / "lab12", USER_RUNTIMES)
        assert engine_gained(before) == NOTHING
