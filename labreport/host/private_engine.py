"""A modern Docker engine of labreport's own, for what the host's engine cannot do.

`labreport setup --engine` unpacks Debian 13's `docker.io` (dockerd 26) and `containerd` (1.7) under
`<state dir>/engine/pkg`; nothing is installed system-wide. labreport starts dockerd with its own
data-root, exec-root, pidfile, socket and bridge, the containerd image store on and iptables off;
dockerd starts its own containerd, which finds the host's runc and labreport's wasmtime shims on
its PATH. So docker, ctr and the shims work on one containerd. It runs only while a measurement
needs it and is stopped on every way out: SIGTERM first, then SIGKILL; its leftover processes,
mounts, bridge and sockets are removed. A run killed with `kill -9` leaves those behind; the next
start clears them first.

Never touched: the host's engine, its docker0 and its containers. (`"bridge": "none"` would make
dockerd delete the host's docker0; the private engine gets a bridge of its own instead.)
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host import engine, fsutil, proc
from labreport.host import paths as host_paths
from labreport.host.cgroup import PRIVATE_CGROUP_PARENT, remove_cgroups
from labreport.host.containerd import Ctr
from labreport.host.endpoints import ContainerdEndpoint, Endpoints, EngineEndpoint
from labreport.host.engine_layout import (
    BRIDGE,
    BRIDGE_ADDRESS,
    CALL_TIMEOUT_S,
    Layout,
    daemon_config,
    daemon_env,
    installed,
    layout,
)


class EngineMode(enum.StrEnum):
    """`measure --engine`: which Docker engine runs the docker runtimes."""

    AUTO = "auto"  # the host's, unless a runtime needs what it lacks (the containerd store)
    HOST = "host"
    PRIVATE = "private"


START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


# -- leftovers: processes, mounts, bridge, sockets ---------------------------------------------


def processes_of(paths: Layout) -> list[int]:
    """Processes that belong to the private engine: its binaries, or naming its directory."""
    found = []
    marker = str(paths.root).encode()
    for pid, argv in proc.command_lines():
        if pid == os.getpid():
            continue
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        owns_binaries = paths.shared_package is None and exe.startswith(str(paths.package))
        if owns_binaries or any(marker in part for part in argv):
            found.append(pid)
    return found


def _ip(*args: str, check: bool = True) -> proc.Completed:
    return proc.run(["ip", *args], timeout_s=CALL_TIMEOUT_S, check=check, what=f"ip {args[0]}")


def bridge_exists() -> bool:
    return _ip("link", "show", BRIDGE, check=False).returncode == 0


def remove_bridge() -> None:
    _ip("link", "delete", BRIDGE, check=False)


def clear_leftovers(paths: Layout, bridge: bool = True) -> list[str]:
    """Kill, unmount and remove what a private engine left; what was found, in words.

    bridge: also the private engine's bridge in this network namespace (an engine in a
    namespace of its own has its bridge there, removed with the namespace).
    """
    found = []
    pids = processes_of(paths)
    if pids:
        found.append(f"{len(pids)} process(es)")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while processes_of(paths) and time.monotonic() < deadline:
            time.sleep(0.1)
    mounts = fsutil.mounts_under(paths.root)
    if mounts:
        found.append(f"{len(mounts)} mount(s)")
        for point in mounts:
            fsutil.unmount(point)
    _clear_run_state(paths, found)
    if bridge and bridge_exists():
        found.append(f"bridge {BRIDGE}")
        remove_bridge()
    if bridge:
        remove_cgroups()
    for path in (
        paths.socket,
        paths.pidfile,
        paths.containerd_socket,
        paths.containerd_socket.with_name("containerd.sock.ttrpc"),
    ):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return found


def _clear_run_state(paths: Layout, found: list[str]) -> None:
    """Removes the exec root: run-time state, what /var/run/docker (a tmpfs wiped at boot) is
    to the host's engine, kept on disk here. What a killed run leaves in it outlives a reboot,
    and a dead task's bundle makes the next containerd try to clean up after its shim at start,
    which hung past dockerd's wait for containerd (seen here: every later start failed with
    "timeout waiting for containerd to start"). The dead shims' sockets in the host-wide
    /run/containerd/s go with their tasks. Only when nothing is mounted under the exec root
    (the caller unmounted and killed what was there)."""
    if fsutil.mounts_under(paths.exec_root):
        return
    dead = paths.dead_tasks()
    if dead:
        found.append(f"{len(dead)} dead task(s)")
    for namespace, task in dead:
        socket = paths.shim_socket(namespace, task)
        if socket.is_socket():
            with contextlib.suppress(FileNotFoundError):
                socket.unlink()
    shutil.rmtree(paths.exec_root, ignore_errors=True)


def _check_address_free() -> None:
    """The bridge's subnet must not overlap a network the host already routes."""
    ours = ipaddress.ip_interface(BRIDGE_ADDRESS).network
    routes = _ip("-4", "route", "show").stdout
    for line in routes.splitlines():
        target = line.split()[0]
        if target == "default":
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.ip_network(target, strict=False).overlaps(ours):
                raise LabreportError(
                    f"the private engine's bridge subnet {ours} overlaps a host route ({line})",
                    "free that subnet, or use --engine host",
                )


def _create_bridge() -> None:
    _check_address_free()
    _ip("link", "add", "name", BRIDGE, "type", "bridge")
    _ip("addr", "add", BRIDGE_ADDRESS, "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")


# -- start and stop -----------------------------------------------------------------------------


def _exclusive(paths: Layout) -> contextlib.AbstractContextManager[None]:
    """One labreport run owns the private engine at a time."""
    return fsutil.exclusive(
        paths.lock,
        f"another labreport run is using the private engine ({paths.root})",
        "wait for it to finish, or measure with --engine host",
    )


def _answers(url: str) -> bool:
    try:
        engine.connect(timeout_s=5, url=url).close()
    except LabreportError:
        return False
    return True


def _wait_until_serving(daemon: subprocess.Popen[bytes], paths: Layout) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            tail = proc.tail(paths.log.read_text(errors="replace"), 300)
            raise LabreportError(
                f"the private engine (dockerd) exited with {daemon.returncode} at start: {tail}",
                f"see {paths.log}",
            )
        if paths.socket.is_socket() and _answers(paths.url):
            return
        time.sleep(0.2)
    raise LabreportError(
        f"the private engine did not answer on {paths.socket} within {START_TIMEOUT_S:g} s",
        f"see {paths.log}",
    )


def stop(daemon: subprocess.Popen[bytes], paths: Layout) -> list[str]:
    """SIGTERM (dockerd stops its containers and its containerd), SIGKILL if it lingers, then
    whatever is left. Returns what had to be cleared by force."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if daemon.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            daemon.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.wait(timeout=STOP_TIMEOUT_S)
    return clear_leftovers(paths)


def _sweep_earlier_runs(paths: Layout) -> None:
    """What runs that died with the engine left inside it: containers and run images.

    The private engine is labreport's alone and serves one run at a time, so everything of
    labreport's in it is from an earlier run; the go-builder image, a cache, stays.
    """
    client = engine.connect(url=paths.url)
    try:
        engine.remove_containers(client, f"{engine.LABEL_MANAGED}=true", settle_s=0)
        for image in client.images.list(all=True):
            for tag in image.tags:
                if ":run-" in tag:
                    client.images.remove(tag, noprune=False)
        engine.remove_build_leftovers(client)
    finally:
        client.close()
    ctr_program = host_paths.which("ctr")
    if ctr_program is not None:
        ctr = Ctr(ctr_program, paths.containerd_socket)
        ctr.sweep("", ctr.image_names())
        ctr.remove_namespace_if_empty()


@dataclass(frozen=True)
class Started:
    url: str
    containerd_socket: Path
    start_seconds: float
    cleared: tuple[str, ...]  # leftovers of an earlier run that were removed first
    daemon: subprocess.Popen[bytes]
    log: Path

    @property
    def endpoints(self) -> Endpoints:
        """Where docker, ctr and the shims reach this engine: dockerd and its one containerd."""
        where = self.containerd_socket.parent
        return Endpoints(
            EngineEndpoint(self.url, "private", PRIVATE_CGROUP_PARENT),
            ContainerdEndpoint(
                self.containerd_socket, f"the private Docker engine's own containerd, under {where}"
            ),
        )

    def check_alive(self) -> None:
        """Raise when dockerd has exited since it started (killed, crashed)."""
        code = self.daemon.poll()
        if code is not None:
            tail = proc.tail(self.log.read_text(errors="replace"), 200)
            raise LabreportError(
                f"the private Docker engine exited mid-run with {code}: {tail}",
                f"see {self.log}; run again (the next start clears what it left)",
            )


@contextlib.contextmanager
def running() -> Iterator[Started]:
    """Start the private engine, yield how to reach it (Started.endpoints), stop it after."""
    reason = installed()
    if reason:
        raise LabreportError(
            reason, "run `labreport setup --engine` (it fetches Debian 13's docker.io)"
        )
    paths = layout()
    if len(str(paths.containerd_socket)) > SOCKET_PATH_MAX:
        raise LabreportError(
            f"the state directory's path is too long for a unix socket: {paths.containerd_socket}",
            "set LABREPORT_STATE_DIR to a shorter path",
        )
    with _exclusive(paths):
        cleared = tuple(clear_leftovers(paths))
        for directory in (paths.data_root, paths.exec_root):
            directory.mkdir(parents=True, exist_ok=True)
        fsutil.atomic_write_text(paths.config, json.dumps(daemon_config(paths), indent=2) + "\n")
        started = time.monotonic()
        daemon: subprocess.Popen[bytes] | None = None
        try:
            _create_bridge()
            with paths.log.open("ab") as log:
                daemon = proc.spawn(
                    [str(paths.dockerd), "--config-file", str(paths.config)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=daemon_env(paths),
                    start_new_session=True,  # Ctrl-C reaches labreport, which stops it in order
                )
            _wait_until_serving(daemon, paths)
            _sweep_earlier_runs(paths)
            info = Started(
                paths.url,
                paths.containerd_socket,
                time.monotonic() - started,
                cleared,
                daemon,
                paths.log,
            )
            yield info
        finally:
            if daemon is not None:
                stop(daemon, paths)
            else:
                clear_leftovers(paths)


def wanted(mode: EngineMode, needs_store: bool, host: EngineEndpoint) -> bool:
    """auto: the private engine only where a runtime needs what the host's engine lacks (the
    containerd image store) and the private engine is installed."""
    if mode == EngineMode.PRIVATE and not host_paths.is_root():
        raise LabreportError(
            "--engine private needs root: dockerd mounts, makes a bridge and cgroups",
            host_paths.NEEDS_ROOT_HINT,
        )
    if mode != EngineMode.AUTO:
        return mode == EngineMode.PRIVATE
    if not needs_store or installed() or not host_paths.is_root():
        return False  # without root the runtimes that need it say why they are unavailable
    try:
        client = engine.connect(timeout_s=20, url=host.url)
    except LabreportError:
        return True  # no host engine at all: the private one serves every docker runtime
    try:
        return not engine.has_containerd_store(client.info())
    finally:
        client.close()


@contextlib.contextmanager
def as_needed(
    mode: EngineMode, needs_store: bool, host: EngineEndpoint
) -> Iterator[Started | None]:
    """labreport's private engine while the block runs, where wanted (host: the host's engine)."""
    if wanted(mode, needs_store, host):
        with running() as started:
            yield started
    else:
        yield None
