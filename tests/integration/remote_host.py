"""A remote Docker engine for tests: a test host of the project's own in a network namespace.

The namespace is made by the test (`ip netns add`, a veth pair 10.213.88.1/30 <-> .2/30), a dockerd
from the private engine's unpacked package runs inside it and listens on TCP at the namespace's
address only, and everything goes afterwards: daemon, its processes and mounts, the namespace
(with the veth pair and its bridge), its cgroups and its data. Only that address and loopback
are ever used.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host import cgroup, engine, engine_layout, fsutil, private_engine

NAMESPACE = "labreport-remote"
HOST_SIDE, NAMESPACE_SIDE = "labreport-h0", "labreport-n0"  # named as the audit looks for
HOST_ADDRESS, ENGINE_ADDRESS = "10.213.88.1/30", "10.213.88.2/30"
BRIDGE_ADDRESS = "10.213.89.1/24"  # the engine's own bridge, inside the namespace
CGROUP_PARENT = "labreport-remote"
URL = f"tcp://{ENGINE_ADDRESS.partition('/')[0]}:2375"


def ip(*args: str, namespace: bool = False, check: bool = True) -> None:
    prefix = ["ip", "netns", "exec", NAMESPACE, "ip"] if namespace else ["ip"]
    subprocess.run([*prefix, *args], check=check, capture_output=True, timeout=30)


def layout(root: Path) -> engine_layout.Layout:
    return engine_layout.Layout(root, shared_package=engine_layout.layout().package)


def traces(root: Path) -> dict[str, object]:
    """What the remote host could leave behind on this machine."""
    namespaces = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    veth = subprocess.run(
        ["ip", "link", "show", HOST_SIDE], capture_output=True, timeout=30, check=False
    )
    paths = layout(root)
    return {
        "namespace": NAMESPACE in namespaces,
        "veth": veth.returncode == 0,
        "processes": private_engine.processes_of(paths),
        "mounts": fsutil.mounts_under(paths.root),
        "cgroups": sorted(str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}")),
    }


NO_TRACES = {"namespace": False, "veth": False, "processes": [], "mounts": [], "cgroups": []}


def _teardown(daemon: subprocess.Popen[bytes] | None, paths: engine_layout.Layout) -> None:
    if daemon is not None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if daemon.poll() is not None:
                break
            daemon.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.wait(timeout=30)
    private_engine.clear_leftovers(paths, bridge=False)
    ip("netns", "delete", NAMESPACE, check=False)  # takes the veth pair and the bridge with it
    ip("link", "delete", HOST_SIDE, check=False)
    cgroup.remove_cgroups(CGROUP_PARENT)
    if not fsutil.mounts_under(paths.root):
        shutil.rmtree(paths.root, ignore_errors=True)


def short_root() -> Path:
    """A directory short enough for containerd's unix sockets (sun_path: 104 bytes and less)."""
    return Path(tempfile.mkdtemp(prefix="lr-remote-", dir="/tmp"))


@contextlib.contextmanager
def remote_engine(root: Path) -> Iterator[str]:
    """A dockerd on its own test host, reachable at URL only; yields URL."""
    paths = layout(root)
    _teardown(None, paths)  # what a killed earlier test left
    daemon: subprocess.Popen[bytes] | None = None
    try:
        ip("netns", "add", NAMESPACE)
        ip("link", "add", HOST_SIDE, "type", "veth", "peer", "name", NAMESPACE_SIDE)
        ip("link", "set", NAMESPACE_SIDE, "netns", NAMESPACE)
        ip("addr", "add", HOST_ADDRESS, "dev", HOST_SIDE)
        ip("link", "set", HOST_SIDE, "up")
        ip("addr", "add", ENGINE_ADDRESS, "dev", NAMESPACE_SIDE, namespace=True)
        ip("link", "set", NAMESPACE_SIDE, "up", namespace=True)
        ip("link", "set", "lo", "up", namespace=True)
        ip("link", "add", "name", engine_layout.BRIDGE, "type", "bridge", namespace=True)
        ip("addr", "add", BRIDGE_ADDRESS, "dev", engine_layout.BRIDGE, namespace=True)
        ip("link", "set", engine_layout.BRIDGE, "up", namespace=True)
        for directory in (paths.data_root, paths.exec_root):
            directory.mkdir(parents=True, exist_ok=True)
        config = {
            **engine_layout.daemon_config(paths),
            "hosts": [URL],
            "cgroup-parent": f"/{CGROUP_PARENT}",
        }
        paths.config.write_text(json.dumps(config, indent=2))
        with paths.log.open("ab") as log:
            daemon = subprocess.Popen(
                # Only the network namespace: `ip netns exec` would also remount /sys and hide
                # the cgroup hierarchies from dockerd.
                ["nsenter", f"--net=/run/netns/{NAMESPACE}", str(paths.dockerd),
                 "--config-file", str(paths.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=engine_layout.daemon_env(paths), start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(LabreportError):
                engine.connect(timeout_s=5, url=URL).close()
                break
            if daemon.poll() is not None or time.monotonic() > deadline:
                log_tail = paths.log.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"the remote engine did not start:\n{log_tail}")
            time.sleep(0.2)
        yield URL
    finally:
        _teardown(daemon, paths)
