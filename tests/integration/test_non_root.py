# ruff: noqa: E501  (a table: one case per line reads better than wrapped ones)
"""labreport as most of its users run it: a user who is not root, in the docker group.

The test makes a throwaway user (removed after) with a venv of its own: a copy of the project's,
on Debian's python3.11 (the project's interpreter may live under root's home, which no one else
can read), and a copy of the lab and the package, since the checkout may be in a folder only
root can read. As that user: doctor marks what needs root and exits 0; a measure of native,
docker-cli and docker-api writes checked samples; render renders it; a root-only runtime asked
for by name is one error before any build; nothing is left on the engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from labreport.record.files import load_measurement

from ..conftest import ROOT, must_have_everything, require
from .common import NOTHING, assert_one_line_error, engine_gained, engine_holds, throwaway_user

pytestmark = pytest.mark.docker
SYSTEM_PYTHON = Path("/usr/bin/python3.11")


@dataclass(frozen=True)
class User:
    name: str
    home: Path

    @property
    def lab(self) -> Path:
        return self.home / "lab"

    def run(self, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
        """The real CLI as this user."""
        python = str(self.home / "venv" / "bin" / "python")
        return self.command(python, "-m", "labreport.cli", *args, timeout_s=timeout_s)

    def command(self, *argv: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
        """argv as this user, in the lab, with a clean environment of its own."""
        env = {
            "HOME": str(self.home),
            "USER": self.name,
            "PATH": f"{self.home}/venv/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "LABREPORT_VENV": str(self.home / "venv"),
        }
        return subprocess.run(
            ["runuser", "-u", self.name, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
             *argv],
            cwd=self.lab, capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    reason = ""
    if os.geteuid() != 0:
        reason = "making a throwaway user needs root"
    elif not SYSTEM_PYTHON.is_file() or shutil.which("runuser") is None:
        reason = f"{SYSTEM_PYTHON} or runuser is missing"
    if reason:
        if must_have_everything():
            pytest.fail(f"{reason}; CI runs as root on a Debian machine")
        pytest.skip(reason)
    require("docker-engine")
    require("go")
    with throwaway_user() as (name, home):
        venv = home / "venv"
        shutil.copytree(sys.prefix, venv, symlinks=True)
        for link in ("python", "python3", "python3.11"):
            (venv / "bin" / link).unlink(missing_ok=True)
            (venv / "bin" / link).symlink_to(SYSTEM_PYTHON)
        (venv / "pyvenv.cfg").write_text(
            f"home = {SYSTEM_PYTHON.parent}\ninclude-system-site-packages = false\n"
        )
        lab = home / "lab"
        lab.mkdir()
        for part in ("labreport", "templates", "app", "scripts"):
            shutil.copytree(ROOT / part, lab / part, ignore=shutil.ignore_patterns("__pycache__"))
        for part in ("lab.toml", "pyproject.toml", "hatch_build.py", "README.md"):
            shutil.copy(ROOT / part, lab / part)
        for pth in venv.glob("lib/python3.11/site-packages/*editable*labreport*.pth"):
            pth.write_text(f"{lab}\n")
        _sh("chown", "-R", f"{name}:{name}", str(home))
        yield User(name, home)


def test_a_user_in_the_docker_group_gets_a_report(user: User) -> None:
    before = engine_holds()
    doctor = user.run("doctor", "--json")
    assert doctor.returncode == 0, doctor.stderr
    assert "Traceback" not in doctor.stderr
    found = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert found["docker-engine"]["found"], found["docker-engine"]
    for root_only in ("containerd", "docker-engine-private", "shim-cache"):
        assert found[root_only]["needs_root"], found[root_only]
        assert "sudo" in found[root_only]["hint"]
    table = user.run("doctor")
    assert table.returncode == 0 and "needs root" in table.stdout, table.stderr

    asked = user.run("measure", "--runtime", "ctr-runc", "-o", "ctr.json")
    assert asked.returncode == 2, asked.stderr
    assert_one_line_error(asked.stderr)
    assert "needs root" in asked.stderr.splitlines()[-2]
    assert "build" not in asked.stdout  # refused before anything was built
    assert not (user.lab / "ctr.json").exists()

    measured = user.run(
        "measure", "--runtime", "native,docker-cli,docker-api", "--runs", "2", "--warmup", "1",
        "-o", "m.json",
    )  # fmt: skip
    assert measured.returncode == 0, measured.stderr
    result = load_measurement(user.lab / "m.json")
    for runtime in ("native", "docker-cli", "docker-api"):
        samples = [s for s in result.samples if s.runtime == runtime]
        assert len(samples) == 3 and all(s.ok for s in samples), [s.failure for s in samples]
    everything = user.run(
        "measure", "--runs", "1", "--warmup", "0", "--no-memory", "--no-serving", "-o", "all.json"
    )
    assert everything.returncode == 0, everything.stderr
    records = {r.name: r for r in load_measurement(user.lab / "all.json").runtimes}
    for root_only in ("ctr-runc", "ctr-wasmtime", "ctr-wasmtime-aot", "docker-wasm"):
        assert records[root_only].reason.startswith("needs root: "), records[root_only]
    for reachable in ("native", "docker-cli", "docker-api", "wasmtime-embedded"):
        assert records[reachable].available, records[reachable]
    rendered = user.run("render", "m.json", "-o", "report.md")
    assert rendered.returncode == 0, rendered.stderr
    assert (user.lab / "report.md").read_text().startswith("# ")
    assert engine_gained(before) == NOTHING  # nothing of this user's runs left on the engine


# The fault catalogue's cases that differ for a user who is not root: each is one `error:` and
# one `hint:` line, the exit code, the words the error holds, no traceback, nothing written.
NON_ROOT_FAULTS = [
    ("a root-only runtime by name", ["measure", "--runtime", "ctr-wasmtime-aot", "-o", "f.json"], 2, "needs root"),
    ("the private engine asked for", ["measure", "--engine", "private", "-o", "f.json"], 2, "--engine private needs root"),
    ("a private containerd asked for", ["measure", "--containerd", "private", "--runtime", "ctr-runc", "-o", "f.json"], 2, "--containerd private needs root"),
    ("doctor --strict with root-only parts", ["doctor", "--strict"], 1, "containerd"),
    ("the shims' cache listed", ["cache"], 2, "needs root"),
    ("the shims' cache cleared", ["cache", "--clear"], 2, "needs root"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "code", "words"), [c[1:] for c in NON_ROOT_FAULTS], ids=[c[0] for c in NON_ROOT_FAULTS]
)
def test_what_needs_root_is_one_clear_error(
    user: User, argv: list[str], code: int, words: str
) -> None:
    before = sorted(p.name for p in user.lab.iterdir())
    done = user.run(*argv)
    assert done.returncode == code, done.stdout + done.stderr
    assert_one_line_error(done.stderr)
    assert words in done.stderr.splitlines()[-2]
    assert "sudo" in done.stderr.splitlines()[-1] or code == 1
    assert sorted(p.name for p in user.lab.iterdir()) == before


def test_setup_as_the_user_skips_what_needs_root_and_says_what_it_costs(user: User) -> None:
    """No sudo for this user: the packages (present) are checked, the engine and the shims (no
    cargo for this user) skipped with their cost; the venv (its own) needs no root."""
    done = user.command("bash", str(user.lab / "scripts" / "setup"))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert f"venv up to date: {user.home}/venv" in out
    assert "setup: packages: present: " in out
    assert "setup: engine: skipped: the private engine runs as root only" in out
    assert "setup: shims: skipped: cargo not found" in out
    assert "docker-wasm" in out  # what a skipped step costs, in words
    assert "Traceback" not in out


def test_a_state_directory_left_by_root_is_one_error_and_left_as_it_is(user: User) -> None:
    state = user.home / ".cache" / "labreport"
    moved = state.with_name("labreport.user")
    if state.exists():
        state.rename(moved)  # the user's own, from the tests above; put back after
    try:
        state.mkdir(parents=True)  # made by root, as an earlier `sudo labreport` run does
        os.chown(user.home / ".cache", *_ids(user.name))
        (state / "root-made").write_text("x")
        done = user.run("measure", "--runtime", "native", "-o", "m.json")
        assert done.returncode == 2, done.stderr
        assert_one_line_error(done.stderr)
        assert "belongs to root" in done.stderr.splitlines()[-2]
        assert (state / "root-made").read_text() == "x" and state.owner() == "root"
    finally:
        shutil.rmtree(state, ignore_errors=True)
        if moved.exists():
            moved.rename(state)


def _ids(name: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid
