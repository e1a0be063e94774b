"""WAGI serving for real: the shim's server (its `--labreport-run` mode serves exactly as a
container does, with the same code) and labreport's CGI server (the embedded-wasmtime and native
floors), each against a guest that answers, traps, computes or waits too long, writes what is
not CGI, or exits non-zero; and SIGTERM while requests are in flight.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labreport.host.shims import WASMTIME_AOT_SHIM, WASMTIME_SHIM
from labreport.runtimes.serving import WAGI_LISTEN_ENV, free_port

from .wagi_guest import GOOD_BODY, precompiled, write_dirty_guest, write_guest

TIMEOUT_MS = 1500


def request(port: int, body: str = "", method: str = "GET") -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, "/hello?x=1", body=body.encode() if body else None)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def wait_for(port: int, process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate(timeout=5)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listened on {port} within {timeout_s} s")


@pytest.fixture
def guest(tmp_path: Path) -> Path:
    return write_guest(tmp_path)


@pytest.fixture(params=["shim", "shim-aot", "embedded", "native-cgi"])
def server(
    request: pytest.FixtureRequest, guest: Path, tmp_path: Path, needs: object
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A WAGI/CGI server of each kind for the guest, stopped (and waited for) on every way out."""
    port = free_port()
    env = dict(os.environ)
    if request.param.startswith("shim"):
        shim = WASMTIME_AOT_SHIM if request.param == "shim-aot" else WASMTIME_SHIM
        needs(shim.binary)  # type: ignore[operator]
        found = shim.find()
        assert found is not None
        argv = [str(found), "--labreport-run", str(tmp_path / "state"), str(guest)]
        env |= {
            WAGI_LISTEN_ENV: f"127.0.0.1:{port}",
            "LABREPORT_WAGI_TIMEOUT_MS": str(TIMEOUT_MS),
            "LABREPORT_WAGI_MAX_BODY_BYTES": "1000",
            "LABREPORT_WAGI_CONCURRENCY": "4",
        }
    else:
        if request.param == "embedded":
            program = ["--wasm", str(precompiled(guest))]
        else:
            program = ["--exec", str(native_cgi(tmp_path))]
        argv = [
            sys.executable, "-m", "labreport.runtimes.cgi_server", "--listen", f"127.0.0.1:{port}",
            *program, "--timeout-s", str(TIMEOUT_MS / 1000), "--max-body", "1000",
            "--concurrency", "4",
        ]  # fmt: skip
    process = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(port, process)
        yield port, process
    finally:
        if process.poll() is None:  # SIGTERM, as labreport stops it: it removes its scratch
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)


def native_cgi(folder: Path) -> Path:
    """The guest's behaviour as a native CGI program (a shell script)."""
    script = folder / "guest.sh"
    script.write_text(
        "#!/bin/sh\n"
        "c=$(head -c 1)\n"
        'case "$c" in\n'
        "  t) kill -SEGV $$ ;;\n"
        "  s|w) sleep 60 ;;\n"
        "  b) printf 'this is not CGI'; exit 0 ;;\n"
        "  x) exit 3 ;;\n"
        "esac\n"
        f"printf 'Content-Type: text/plain\\n\\n{GOOD_BODY.strip()}\\n'\n"
    )
    script.chmod(0o755)
    return script


def assert_serves_concurrently(port: int) -> None:
    """8 clients at once, 10 requests each: every answer is the guest's good one."""
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(10):
            answer = request(port)
            with lock:
                results.append(answer)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == [(200, GOOD_BODY)] * 80


def test_serves_concurrent_requests_then_every_failure_in_turn(
    server: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, process = server
    assert_serves_concurrently(port)

    assert request(port, "t")[0] == 500  # traps (or dies on a signal)
    assert request(port, "x")[0] == 500  # exits 3
    status, text = request(port, "b")
    assert status == 502 and "not a CGI response" in text
    started = time.monotonic()
    assert request(port, "s")[0] == 504  # computes past the deadline
    assert request(port, "w")[0] == 504  # waits in a host call past it
    assert time.monotonic() - started < 2 * (TIMEOUT_MS / 1000) + 5
    assert request(port, "y" * 1001)[0] == 413  # over the body limit
    assert request(port) == (200, GOOD_BODY)  # still serving
    assert request(port, method="HEAD")[0] == 200
    assert process.poll() is None


def test_deadlines_hold_while_every_guest_slot_computes(
    server: tuple[int, subprocess.Popen[bytes]],
) -> None:
    """As many guests computing past their deadline as the server runs at once (4): on 2 cores
    they hold every worker of the shim's runtime, and the epoch's clock must not need one."""
    answers: list[int] = []
    lock = threading.Lock()

    def computes() -> None:
        status = request(port, "s")[0]
        with lock:
            answers.append(status)

    port, process = server
    started = time.monotonic()
    threads = [threading.Thread(target=computes) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == [504] * 4
    assert time.monotonic() - started < 2 * (TIMEOUT_MS / 1000) + 5
    assert request(port) == (200, GOOD_BODY)
    assert process.poll() is None


def test_sigterm_while_serving_stops_it(server: tuple[int, subprocess.Popen[bytes]]) -> None:
    port, process = server

    def in_flight() -> None:
        with contextlib.suppress(OSError, http.client.HTTPException):  # cut off by the stop
            request(port, "w")

    slow = threading.Thread(target=in_flight, daemon=True)
    slow.start()
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=20)
    assert process.returncode == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


@pytest.mark.parametrize("limit", [None, 12 << 30], ids=["pooled", "pool-refused"])
def test_instances_come_from_a_pool_or_on_demand_where_the_host_refuses_it(
    limit: int | None, guest: Path, tmp_path: Path, needs: object
) -> None:
    """16 slots of 4 GiB of address space each: reserved at the start, or, under a 12 GiB
    address-space limit that refuses them, the same server allocating each instance on demand
    (one at a time fits). Either way every answer is the guest's."""
    needs(WASMTIME_AOT_SHIM.binary)  # type: ignore[operator]
    found = WASMTIME_AOT_SHIM.find()
    assert found is not None
    port = free_port()
    env = {**os.environ, WAGI_LISTEN_ENV: f"127.0.0.1:{port}", "LABREPORT_WAGI_CONCURRENCY": "16"}
    wrap = [] if limit is None else ["prlimit", f"--as={limit}"]  # util-linux: it execs the shim
    process = subprocess.Popen(
        [*wrap, str(found), "--labreport-run", str(tmp_path / "state"), str(guest)],
        env=env, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(port, process)
        assert [request(port) for _ in range(20)] == [(200, GOOD_BODY)] * 20
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    said = stderr.decode().splitlines()[0]
    if limit is None:
        assert "instances: pooling allocator, 16 slots, 16 MiB" in said, said
    else:
        assert "instances: on demand: the host refused the pooling allocator" in said, said
    assert process.returncode == 0


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.parametrize("variant", ["", "no-trim"], ids=["trimmed", "kept"])
def test_an_idle_server_hands_back_the_memory_its_pool_keeps(
    variant: str, tmp_path: Path, needs: object
) -> None:
    """A guest dirties 8 MiB; its slot keeps them resident for the next guest, and the server
    hands them back to the kernel once it has been idle for a quarter of a second (not when
    asked not to: the benchmark variant no-trim)."""
    needs(WASMTIME_AOT_SHIM.binary)  # type: ignore[operator]
    found = WASMTIME_AOT_SHIM.find()
    assert found is not None
    port = free_port()
    env = {
        **os.environ, WAGI_LISTEN_ENV: f"127.0.0.1:{port}", "LABREPORT_WAGI_CONCURRENCY": "2",
        "LABREPORT_SHIM_BENCH_VARIANT": variant,
    }  # fmt: skip
    process = subprocess.Popen(
        [str(found), "--labreport-run", str(tmp_path / "state"), str(write_dirty_guest(tmp_path))],
        env=env, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(port, process)
        before = resident_mib(process.pid)
        assert request(port) == (200, "ok\n")
        kept = resident_mib(process.pid) - before
        time.sleep(1.5)
        left = resident_mib(process.pid) - before
        assert request(port) == (200, "ok\n")  # the trimmed slot serves again
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=30)
    assert kept >= 7, kept  # the slot keeps what its guest dirtied
    if variant == "no-trim":
        assert left >= 7, left
    else:
        assert left < 2, left
