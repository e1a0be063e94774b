"""A containerd of labreport's own, for hosts whose Docker engine exposes no containerd socket.

It keeps its root, state, socket, config and log under `<state dir>/containerd`, runs only
while a measurement needs it, and is stopped on every way out (Ctrl-C included). Its content
store is a cache that later runs reuse; labreport's cleanup leaves no image, container or
snapshot of a run in it.
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host import fsutil, paths, proc
from labreport.host.containerd import Ctr
from labreport.host.endpoints import ContainerdEndpoint


class ContainerdMode(enum.StrEnum):
    """`measure --containerd`: which containerd runs the ctr runtimes."""

    AUTO = "auto"  # the engine's, else a private one where containerd is installed
    ENGINE = "engine"
    PRIVATE = "private"


START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
PROBE_TIMEOUT_S = 5.0

CONFIG = """\
# Written by labreport: a private containerd under labreport's state directory.
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
"""


def home() -> Path:
    return paths.state_dir() / "containerd"


def socket_path() -> Path:
    return home() / "containerd.sock"


def binary() -> Path | None:
    return paths.which("containerd")


def answers(socket: Path) -> bool:
    """Whether a containerd serves this socket (ctr version reaches the server)."""
    ctr = paths.which("ctr")
    if ctr is None or not socket.is_socket():
        return False
    try:
        Ctr(ctr, socket).version(timeout_s=PROBE_TIMEOUT_S)
    except LabreportError:
        return False
    return True


def needed(mode: ContainerdMode, current: ContainerdEndpoint) -> bool:
    """auto: only when no containerd is known (current: the one the command would use) and
    containerd and ctr are installed (otherwise the ctr runtimes say why not)."""
    if mode == ContainerdMode.PRIVATE:
        if not paths.is_root():
            raise LabreportError(
                "--containerd private needs root: containerd mounts snapshots and makes cgroups",
                paths.NEEDS_ROOT_HINT,
            )
        return True
    if mode == ContainerdMode.ENGINE or not paths.is_root():
        return False  # without root the ctr runtimes say why they are unavailable
    installed = binary() is not None and paths.which("ctr") is not None
    return installed and current.socket is None


def endpoint(socket: Path) -> ContainerdEndpoint:
    return ContainerdEndpoint(
        socket, f"a private containerd started and stopped by labreport under {socket.parent}"
    )


@contextlib.contextmanager
def running() -> Iterator[ContainerdEndpoint]:
    """Start the private containerd, yield where it answers, stop it afterwards.

    If one from another labreport run already serves the socket, it is used and left running.
    """
    socket = socket_path()
    if answers(socket):
        yield endpoint(socket)
        return
    program = binary()
    if program is None:
        raise LabreportError(
            "containerd is not on PATH, and the engine exposes no containerd socket",
            "run `labreport setup --packages` (it installs Debian's containerd)",
        )
    root, state = home() / "root", home() / "state"
    for directory in (root, state):
        directory.mkdir(parents=True, exist_ok=True)
    config_file = home() / "config.toml"
    fsutil.atomic_write_text(config_file, CONFIG.format(root=root, state=state, socket=socket))
    _remove_sockets(socket)  # stale ones of ours, left by a killed daemon
    log_path = home() / "containerd.log"
    with log_path.open("ab") as log:
        daemon = proc.spawn(
            [str(program), "--config", str(config_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches labreport, which then stops it in order
        )
    try:
        _wait_until_serving(daemon, socket, log_path)
        yield endpoint(socket)
    finally:
        stop(daemon)
        _remove_sockets(socket)


def _remove_sockets(socket: Path) -> None:
    for path in (socket, socket.with_name(socket.name + ".ttrpc")):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _wait_until_serving(daemon: subprocess.Popen[bytes], socket: Path, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            tail = proc.tail(log.read_text(errors="replace"), 300)
            raise LabreportError(
                f"the private containerd exited with {daemon.returncode} at start: {tail}",
                f"see {log}; it needs root (cgroups, mounts)",
            )
        if answers(socket):
            return
        time.sleep(0.1)
    raise LabreportError(
        f"the private containerd did not answer on {socket} within {START_TIMEOUT_S:g} s",
        f"see {log}",
    )


def stop(daemon: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it lingers; its shims have been cleaned up by then."""
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
        if daemon.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.wait(timeout=wait_s)


@contextlib.contextmanager
def as_needed(
    mode: ContainerdMode, wanted: bool, current: ContainerdEndpoint
) -> Iterator[ContainerdEndpoint]:
    """Around a measurement: the containerd to use, a private one while it runs if the
    runtimes want one and none is known (or mode is private); else current."""
    if wanted and needed(mode, current):
        with running() as started:
            yield started
    else:
        yield current
