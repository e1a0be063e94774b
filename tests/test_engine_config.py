"""The private engine's configuration and the engine choice, without starting a daemon."""

from __future__ import annotations

import hashlib
import ipaddress
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from labreport.build import oci
from labreport.host import engine, engine_layout, private_engine
from labreport.host.endpoints import ContainerdEndpoint, Endpoints, EngineEndpoint, is_local
from labreport.inventory import components

from .test_cli import run


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("labreport/moscow-time-wasm:run-1", "docker.io/labreport/moscow-time-wasm:run-1"),
        ("alpine:3", "docker.io/library/alpine:3"),
        ("docker.io/x/y:1", "docker.io/x/y:1"),
        ("localhost:5000/x:1", "localhost:5000/x:1"),
        ("registry.example.org/team/x", "registry.example.org/team/x"),
    ],
)
def test_the_wasm_image_is_named_as_docker_looks_it_up(reference: str, expected: str) -> None:
    assert oci.qualified(reference) == expected


def test_daemon_config_keeps_the_host_engine_safe(tmp_path: Path) -> None:
    paths = engine_layout.Layout(tmp_path)
    config = engine_layout.daemon_config(paths)
    # "bridge": "none" would make dockerd delete the host's docker0: a bridge of its own.
    assert config["bridge"] == engine_layout.BRIDGE != "none"
    assert config["iptables"] is False and config["ip6tables"] is False
    assert config["features"] == {"containerd-snapshotter": True}
    # Everything of its own under its directory, nothing in the host engine's places.
    for key in ("data-root", "exec-root", "pidfile"):
        assert str(config[key]).startswith(str(tmp_path))
    assert config["hosts"] == [f"unix://{tmp_path}/docker.sock"]
    # Absolute: containers' cgroups do not depend on which cgroup started the engine.
    assert str(config["cgroup-parent"]).startswith("/")
    network = ipaddress.ip_interface(engine_layout.BRIDGE_ADDRESS).network
    assert network.is_private and not network.overlaps(ipaddress.ip_network("172.17.0.0/16"))


def test_the_cli_and_the_api_follow_the_engine_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    default = EngineEndpoint.from_environment()
    assert default.cli() == ["docker"] and default.source == "host"
    private = EngineEndpoint("unix:///x/docker.sock", "private")
    assert private.cli() == ["docker", "--host", "unix:///x/docker.sock"]
    assert private.url == "unix:///x/docker.sock"
    assert private.source == "private"
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    named = EngineEndpoint.from_environment()
    assert named.source == "DOCKER_HOST" and named.url == "tcp://127.0.0.1:2375"


def test_containerd_store_is_read_from_the_driver_status() -> None:
    assert engine.has_containerd_store(
        {"DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]]}
    )
    assert not engine.has_containerd_store({"Driver": "overlay2", "DriverStatus": [["x", "y"]]})
    assert not engine.has_containerd_store({"DriverStatus": None})


def test_engine_choice_is_checked_before_any_work(tmp_path: Path) -> None:
    done = run("measure", "--engine", "remote", env={"LABREPORT_STATE_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: --engine remote: not a choice",
        "hint: choose from: auto, host, private",
    ]


def test_private_engine_that_was_never_fetched_is_one_error(tmp_path: Path) -> None:
    done = run(
        "measure", "--engine", "private", "--runtime", "native", "-o", str(tmp_path / "m.json"),
        env={"LABREPORT_STATE_DIR": str(tmp_path / "empty-state")},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-2].startswith("error: the private engine is not unpacked")
    assert lines[-1] == "hint: run `labreport setup --engine` (it fetches Debian 13's docker.io)"
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("unix:///var/run/docker.sock", True),
        ("tcp://127.0.0.1:2375", True),
        ("tcp://localhost:2375", True),
        ("tcp://[::1]:2375", True),
        ("tcp://10.213.99.2:2375", False),
        ("ssh://user@build-box", False),
    ],
)
def test_which_targets_share_this_host(url: str, local: bool) -> None:
    assert is_local(url) is local


def test_target_options_are_checked_before_any_work(tmp_path: Path) -> None:
    from labreport.errors import LabreportError

    assert engine.resolve_target(None, None) is None
    assert engine.resolve_target("tcp://10.0.0.2:2375", None) == "tcp://10.0.0.2:2375"
    with pytest.raises(LabreportError, match="both name an engine"):
        engine.resolve_target("tcp://x:1", "ctx")
    with pytest.raises(LabreportError, match="not an engine URL"):
        engine.resolve_target("10.0.0.2:2375", None)
    done = run("measure", "--context", "no-such-context-xyz", "-o", str(tmp_path / "m.json"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[0].startswith(
        "error: docker context no-such-context-xyz does not exist"
    )
    assert done.stderr.splitlines()[-1] == "hint: list them with 'docker context ls'"
    assert not (tmp_path / "m.json").exists()


def test_a_target_that_does_not_answer_is_one_error_before_any_build(tmp_path: Path) -> None:
    done = run(
        "measure", "--docker-host", f"unix://{tmp_path}/nothing.sock",
        "-o", str(tmp_path / "m.json"), env={"LABREPORT_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: Docker daemon not reachable at unix://{tmp_path}/")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "state" / "artifacts").exists()  # nothing was built


def test_runtimes_on_the_clients_host_are_not_on_a_remote_target() -> None:
    from labreport.measure.plan import Plan, not_on_target
    from labreport.runtimes.ctr import CtrRuncRuntime
    from labreport.runtimes.docker import DockerCliRuntime
    from labreport.runtimes.native import NativeRuntime

    remote = Plan(runs=1, warmup=0, timeout_s=1, output=Path("x"),
                  target="tcp://10.0.0.2:2375", target_is_local=False)  # fmt: skip
    local = Plan(runs=1, warmup=0, timeout_s=1, output=Path("x"),
                 target="unix:///other.sock", target_is_local=True)  # fmt: skip
    assert not_on_target(NativeRuntime(), remote).startswith("not on this target")
    assert "remote engine at tcp://10.0.0.2:2375" in not_on_target(NativeRuntime(), remote)
    assert not_on_target(DockerCliRuntime(), remote) == ""
    assert not_on_target(NativeRuntime(), local) == ""
    assert "LABREPORT_CONTAINERD_SOCKET" in not_on_target(CtrRuncRuntime(), local)
    unnamed = Plan(runs=1, warmup=0, timeout_s=1, output=Path("x"))
    assert not_on_target(CtrRuncRuntime(), unnamed) == ""


def test_docker_host_in_the_environment_is_a_target_like_the_option(tmp_path: Path) -> None:
    done = run(
        "measure", "-o", str(tmp_path / "m.json"),
        env={"DOCKER_HOST": f"unix://{tmp_path}/gone.sock",
             "LABREPORT_STATE_DIR": str(tmp_path / "state")},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: Docker daemon not reachable at unix://{tmp_path}/")
    assert not (tmp_path / "state" / "artifacts").exists()


def test_an_ssh_endpoint_needs_the_ssh_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from labreport.errors import LabreportError

    monkeypatch.setattr(engine.shutil, "which", lambda name: None)
    with pytest.raises(LabreportError, match="needs the ssh client") as raised:
        engine.resolve_target("ssh://me@build-box", None)
    assert "tcp://" in raised.value.hint


class FakeEngine:
    """Answers info() with whatever engine ID the test says is behind the address now."""

    def __init__(self, answering: list[str]) -> None:
        self.answering = answering

    def info(self) -> dict[str, str]:
        return {"ID": self.answering[0]}

    def close(self) -> None:
        pass


def test_a_different_engine_answering_midway_stops_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from labreport.errors import LabreportError

    answering = ["AAAA1111"]
    monkeypatch.setattr(engine, "connect", lambda timeout_s=0, url=None: FakeEngine(answering))
    check = engine.same_engine_check("tcp://10.213.88.2:2375")
    check()  # the same engine: nothing to say
    answering[0] = "BBBB2222"
    with pytest.raises(LabreportError, match=r"a different engine answers at tcp://10\.213"):
        check()


def test_doctor_probes_the_engine_and_containerd_it_is_given(tmp_path: Path) -> None:
    """A measurement records doctor's versions of the endpoints it measures on."""
    gone = f"unix://{tmp_path}/no-engine.sock"
    absent = ContainerdEndpoint(tmp_path / "no-containerd.sock", "given by a test")
    found = {
        c.name: c for c in components.diagnose(Endpoints(EngineEndpoint(gone, "private"), absent))
    }
    assert not found["docker-engine"].found
    assert gone in found["docker-engine"].detail
    assert not found["containerd"].found
    assert str(absent.socket) in found["containerd"].detail


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder whose sockets fit in a unix socket's 107 bytes (pytest's tmp_path may not)."""
    folder = Path(tempfile.mkdtemp(prefix="s", dir="/tmp"))
    yield folder
    shutil.rmtree(folder)


def test_a_dead_task_and_its_shims_socket_are_cleared_with_the_run_state(
    tmp_path: Path, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shim killed mid-start leaves its task's bundle in the exec root and its socket in
    /run/containerd/s; both go (the socket found by containerd's own naming), and so does the
    rest of the exec root. Another task's socket stays."""
    sockets = short_dir
    monkeypatch.setattr(engine_layout, "SHIM_SOCKET_DIR", sockets)
    paths = engine_layout.Layout(tmp_path / "engine")
    task = "f6e8a726f504ffd0663537999a4ea3a073f9a773ca65ab3a6eb115d67035285d"
    (paths.tasks / "moby" / task).mkdir(parents=True)
    (paths.exec_root / "netns").mkdir()
    dead, other = paths.shim_socket("moby", task), sockets / ("0" * 64)
    expected = f"{paths.containerd_socket}/moby/{task}"
    assert dead.name == hashlib.sha256(expected.encode()).hexdigest()
    for path in (dead, other):
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(str(path))
    assert paths.dead_tasks() == [("moby", task)]
    found = private_engine.clear_leftovers(paths, bridge=False)
    assert found == ["1 dead task(s)"]
    assert not paths.exec_root.exists() and not dead.exists() and other.is_socket()
    assert private_engine.clear_leftovers(paths, bridge=False) == []
