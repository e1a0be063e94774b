"""WAGI in the shims as containers: through `ctr run --net-host` on the host engine's containerd
and through `docker run --network host` on labreport's private Docker 26 engine, the test guest
(tests/integration/wagi_guest.py) answers concurrent requests, and a trap, a guest past its
deadline, output that is not CGI and an oversized body each get their status while the service
keeps serving; SIGTERM (ctr task kill, docker stop) ends it and nothing is left: task, container,
image, port, process.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from labreport.build import oci
from labreport.host import engine, private_engine, shim_cache
from labreport.host.containerd import Ctr
from labreport.host.endpoints import ContainerdEndpoint
from labreport.host.shims import WASMTIME_AOT_SHIM
from labreport.runtimes.serving import WAGI_LISTEN_ENV, free_port

from .test_wagi import TIMEOUT_MS, assert_serves_concurrently, request
from .wagi_guest import GOOD_BODY, write_guest

pytestmark = [pytest.mark.shim]
SETTINGS = {"LABREPORT_WAGI_TIMEOUT_MS": str(TIMEOUT_MS), "LABREPORT_WAGI_MAX_BODY_BYTES": "1000"}
REFERENCE = oci.qualified("labreport/wagi-test:run-test")


def exercise(port: int, alive: Callable[[], bool]) -> None:
    """Concurrent good requests, then each failure in turn; the service keeps serving."""
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert alive(), "the service exited before it listened"
            assert time.monotonic() < deadline, "the service never listened"
            time.sleep(0.05)
    assert_serves_concurrently(port)
    assert request(port, "t")[0] == 500
    assert request(port, "b")[0] == 502
    assert request(port, "s")[0] == 504
    assert request(port, "y" * 1001)[0] == 413
    assert request(port) == (200, GOOD_BODY)
    assert alive()


# The cgroup v1 controllers libcontainer (youki) moves a container's process into.
YOUKI_V1_CONTROLLERS = {
    "cpu", "cpuacct", "cpuset", "devices", "hugetlb", "memory", "pids", "perf_event", "blkio",
    "net_cls", "net_prio", "freezer",
}  # fmt: skip


def assert_in_its_cgroups(pid: int, container: str) -> None:
    """Every thread of the container's process is in the container's cgroup in each hierarchy
    libcontainer manages (the shims' patched libcgroups moves it by `tasks`, see shim_patch.py),
    or, on a cgroup v2 host, in its unified cgroup."""
    threads = list(Path(f"/proc/{pid}/task").iterdir())
    assert len(threads) > 1  # the WAGI server's threads, made after the move: they follow it
    for thread in threads:
        lines = [line.split(":", 2) for line in (thread / "cgroup").read_text().splitlines()]
        managed = [line for line in lines if YOUKI_V1_CONTROLLERS & set(line[1].split(","))]
        for _, controllers, path in managed or [line for line in lines if line[0] == "0"]:
            assert path.endswith(f"/{container}"), (thread.name, controllers, path)


def task_pid(ctr: Ctr, container: str) -> int:
    for line in ctr.call("task", "ls").splitlines()[1:]:
        name, pid, *_ = line.split()
        if name == container:
            return int(pid)
    raise AssertionError(f"no task {container}")


def forget_compiled(guest: Path) -> None:
    """The caching shim's entry for the guest: each run of labreport removes its own."""
    shim_cache.forget(hashlib.sha256(guest.read_bytes()).hexdigest())


def port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_through_ctr(tmp_path: Path, needs: Callable[[str], None]) -> None:
    needs("containerd")
    needs(WASMTIME_AOT_SHIM.binary)
    archive = tmp_path / "wagi.tar"
    guest = write_guest(tmp_path)
    oci.write_wasm_image(guest.read_bytes(), "/guest.wasm", REFERENCE, archive)
    ctr = Ctr.find(ContainerdEndpoint.from_environment())
    container = "labreport-test-wagi"
    port = free_port()
    env = {WAGI_LISTEN_ENV: f"127.0.0.1:{port}", **SETTINGS}
    flags = [x for k, v in env.items() for x in ("--env", f"{k}={v}")]
    ctr.import_archive(archive, "wasi/wasm")
    try:
        argv = ctr.argv(
            "run", "--rm", "--net-host", "--runtime", WASMTIME_AOT_SHIM.runtime,
            "--platform", "wasi/wasm", *flags, REFERENCE, container,
        )  # fmt: skip
        service = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            exercise(port, lambda: service.poll() is None)
            assert_in_its_cgroups(task_pid(ctr, container), container)
            ctr.call("task", "kill", "--signal", "SIGTERM", container)
            _, stderr = service.communicate(timeout=30)
            assert service.returncode == 0, stderr
        finally:
            if service.poll() is None:
                service.kill()
                service.communicate(timeout=30)
            ctr.remove_container(container)
        assert container not in ctr.container_ids() and container not in ctr.task_ids()
        assert port_closed(port)
    finally:
        ctr.remove_images([REFERENCE])
        ctr.remove_namespace_if_empty()
        forget_compiled(guest)


def test_through_docker_on_the_private_engine(tmp_path: Path, needs: Callable[[str], None]) -> None:
    needs("docker-engine-private")
    needs(WASMTIME_AOT_SHIM.binary)
    archive = tmp_path / "wagi.tar"
    guest = write_guest(tmp_path)
    oci.write_wasm_image(guest.read_bytes(), "/guest.wasm", REFERENCE, archive)
    port = free_port()
    with private_engine.running() as started:
        docker = ["docker", "--host", started.url]
        subprocess.run([*docker, "load", "-i", str(archive)], check=True, timeout=120)
        env = {WAGI_LISTEN_ENV: f"127.0.0.1:{port}", **SETTINGS}
        name = "labreport-test-wagi"
        run = [
            *docker, "run", "-d", "--name", name, "--label", f"{engine.LABEL_MANAGED}=true",
            "--runtime", WASMTIME_AOT_SHIM.runtime, "--platform", "wasi/wasm",
            "--network", "host", *[x for k, v in env.items() for x in ("-e", f"{k}={v}")],
            REFERENCE,
        ]  # fmt: skip
        try:
            subprocess.run(run, check=True, timeout=60, capture_output=True)

            def alive() -> bool:
                state = subprocess.run(
                    [*docker, "inspect", "-f", "{{.State.Running}}", name],
                    capture_output=True, text=True, timeout=30, check=False,
                )  # fmt: skip
                return state.stdout.strip() == "true"

            exercise(port, alive)
            started_stop = time.monotonic()
            subprocess.run([*docker, "stop", name], check=True, timeout=60, capture_output=True)
            # SIGTERM ends it at once (the shim handles it); docker stop would wait 10 s for
            # a process that ignores it, then kill it.
            assert time.monotonic() - started_stop < 8
            code = subprocess.run(
                [*docker, "inspect", "-f", "{{.State.ExitCode}}", name],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout.strip()  # fmt: skip
            assert code == "0"
        finally:
            subprocess.run(
                [*docker, "rm", "-f", name], timeout=60, capture_output=True, check=False
            )
            subprocess.run(
                [*docker, "rmi", REFERENCE], timeout=60, capture_output=True, check=False
            )
            forget_compiled(guest)
        assert port_closed(port)
