"""labreport's private Docker engine on disk: where everything of it lives, how it is
configured, and whether setup has unpacked it. Starting and stopping it: private_engine.py."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from labreport.host import paths as host_paths
from labreport.host import proc
from labreport.host.cgroup import PRIVATE_CGROUP_PARENT
from labreport.host.shims import SHIM_DIR

BRIDGE = "labreport0"
BRIDGE_ADDRESS = "10.213.77.1/24"  # the private engine's own bridge; checked against the host's
CALL_TIMEOUT_S = 20.0
# Where containerd's shims listen (runc's and runwasi's alike): a host-wide folder.
SHIM_SOCKET_DIR = Path("/run/containerd/s")


def home() -> Path:
    return host_paths.state_dir() / "engine"


@dataclass(frozen=True)
class Layout:
    """Every path of an engine labreport runs, under one directory (the binaries too, unless
    they are shared from another layout's package)."""

    root: Path
    shared_package: Path | None = None

    @property
    def package(self) -> Path:
        return self.shared_package or self.root / "pkg"

    @property
    def dockerd(self) -> Path:
        return self.package / "usr" / "sbin" / "dockerd"

    @property
    def proxy(self) -> Path:
        return self.package / "usr" / "sbin" / "docker-proxy"

    @property
    def bin_dir(self) -> Path:
        return self.package / "usr" / "bin"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "exec"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def containerd_socket(self) -> Path:
        return self.exec_root / "containerd" / "containerd.sock"

    @property
    def tasks(self) -> Path:
        """containerd's task bundles, a folder per namespace, one per task in it."""
        return self.exec_root / "containerd" / "daemon" / "io.containerd.runtime.v2.task"

    def dead_tasks(self) -> list[tuple[str, str]]:
        """(namespace, task id) of every bundle left here: a task whose shim was killed."""
        try:
            namespaces = [n for n in self.tasks.iterdir() if n.is_dir() and not n.is_symlink()]
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted((n.name, t.name) for n in namespaces for t in n.iterdir())

    def shim_socket(self, namespace: str, task: str) -> Path:
        """The socket a task's shim listens on: containerd names it by the sha256 of its own
        address, the namespace and the task id (shim.SocketAddress)."""
        name = f"{self.containerd_socket}/{namespace}/{task}"
        return SHIM_SOCKET_DIR / hashlib.sha256(name.encode()).hexdigest()

    @property
    def pidfile(self) -> Path:
        return self.root / "docker.pid"

    @property
    def config(self) -> Path:
        return self.root / "daemon.json"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"


def layout() -> Layout:
    return Layout(home())


def installed() -> str:
    """'' when the unpacked engine is there, else why not."""
    paths = layout()
    for program in (paths.dockerd, paths.bin_dir / "containerd", paths.proxy):
        if not program.is_file():
            return f"the private engine is not unpacked ({program} is missing)"
    if host_paths.which("runc") is None:
        return "runc is not on PATH (the private engine uses the host's runc)"
    return ""


def version() -> str:
    """dockerd's own version line, without starting it."""
    done = proc.run([str(layout().dockerd), "--version"], timeout_s=CALL_TIMEOUT_S, check=False)
    return done.stdout.strip() or "unknown"


def daemon_config(paths: Layout) -> dict[str, object]:
    return {
        "data-root": str(paths.data_root),
        "exec-root": str(paths.exec_root),
        "pidfile": str(paths.pidfile),
        "hosts": [paths.url],
        "bridge": BRIDGE,
        "iptables": False,
        "ip6tables": False,
        "ip-forward": False,
        "ip-masq": False,
        "features": {"containerd-snapshotter": True},
        "cgroup-parent": f"/{PRIVATE_CGROUP_PARENT}",  # absolute: not under our own cgroup
        "userland-proxy-path": str(paths.proxy),
        "log-driver": "json-file",
    }


def daemon_env(paths: Layout) -> dict[str, str]:
    """dockerd finds containerd 1.7 in the package, runc on the host, the shims in SHIM_DIR."""
    path = [
        str(paths.bin_dir),
        str(SHIM_DIR),
        "/usr/local/sbin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    return {"PATH": ":".join(path), "HOME": str(paths.root)}
