"""The wasmtime shims' cache directory: the compiled-module cache and the phase records.

The caching shim (io.containerd.wasmtime-aot.v1, shim/src/cache.rs) keeps one file per module
and engine in `modules/<module sha256>-<engine hash>.cwasm`, and in `known/<32 hex>` a record
per module file it hashed (the file's identity, its sha256, the entry checked for it), so that
a later start of that unchanged file reads neither; both shims write the timeline of a start to
`phases/<token>.json` when the run's environment carries LABREPORT_PHASES=<token>.

Where: /var/cache/labreport-wasmtime (root only), or $LABREPORT_WASMTIME_CACHE, which must then
be set for the containerd that starts the shims too. Bounded by the shim: beyond 512 MiB of
entries (or $LABREPORT_WASMTIME_CACHE_MAX_BYTES) the oldest go first. Emptied by labreport: a
measurement removes its module's entry before its first start (so that first start really
compiles) and after its last, and reads and removes every phase record it asked for;
`labreport cache --clear` removes all entries and records. Nothing else in the directory is
touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host.paths import NEEDS_ROOT
from labreport.host.proc import split_run

DEFAULT_DIR = Path("/var/cache/labreport-wasmtime")
PHASES_ENV = "LABREPORT_PHASES"
ENTRY = re.compile(r"^(?P<module>[0-9a-f]{64})-(?P<engine>[0-9a-f]{16})\.cwasm$")
TEMP = re.compile(r"^\..+\.tmp$")
RECORD = re.compile(r"^[0-9a-f]{32}$")
PHASE_RECORD = re.compile(r"^.+\.json$")
RECORD_MAGIC = b"LRKNOWN1"
RECORD_LEN = 156
DIGEST_AT = 8 + 52 + 8
TOKEN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
MAX_RECORD_BYTES = 64 * 1024


def cache_dir() -> Path:
    """The shims' cache folder; one that exists as anything but a folder is refused."""
    root = Path(os.environ.get("LABREPORT_WASMTIME_CACHE") or DEFAULT_DIR)
    if root.exists() and not root.is_dir():
        raise LabreportError(
            f"the wasmtime shims' cache {root} is not a directory",
            "point LABREPORT_WASMTIME_CACHE at a folder (or unset it)",
        )
    return root


@dataclass(frozen=True)
class Entry:
    path: Path
    module_sha256: str
    engine_hash: str
    size_bytes: int


def entries(root: Path | None = None) -> list[Entry]:
    """The cache's entries (the files the shim named as entries; nothing else)."""
    modules = (root or cache_dir()) / "modules"
    found = []
    try:
        children = sorted(modules.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    except PermissionError as error:  # the shims run as root and keep it root's
        raise LabreportError(
            f"{NEEDS_ROOT}: the shims' cache {modules.parent} is root's alone",
            "sudo -E .venv/bin/labreport cache lists it",
        ) from error
    for child in children:
        match = ENTRY.match(child.name)
        if match and child.is_file() and not child.is_symlink():
            found.append(Entry(child, match["module"], match["engine"], child.stat().st_size))
    return found


def forget(module_sha256: str, root: Path | None = None) -> int:
    """Removes the entries of one module (any engine), and the known-file records that point
    to them; how many entries there were."""
    root = root or cache_dir()
    removed = 0
    for entry in entries(root):
        if entry.module_sha256 == module_sha256:
            with contextlib.suppress(FileNotFoundError):
                entry.path.unlink()
                removed += 1
    digest = bytes.fromhex(module_sha256)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError, PermissionError):
        for record in (root / "known").iterdir():
            if RECORD.match(record.name) and _record_digest(record) == digest:
                with contextlib.suppress(FileNotFoundError):
                    record.unlink()
    return removed


def _record_digest(path: Path) -> bytes | None:
    """The module sha256 a known-file record holds (shim/src/cache.rs: magic, the file's
    identity, the engine hash, the digest, the entry's identity, CRC-32); None if it is none."""
    if path.is_symlink() or not path.is_file():
        return None
    data = path.read_bytes()[: RECORD_LEN + 1]
    if len(data) != RECORD_LEN or not data.startswith(RECORD_MAGIC):
        return None
    return data[DIGEST_AT : DIGEST_AT + 32]


def clear(root: Path | None = None) -> tuple[int, int]:
    """Removes every entry, known-file record, dead writer's temp file and phase record;
    (files, bytes)."""
    root = root or cache_dir()
    files = size = 0
    candidates = [e.path for e in entries(root)]
    for folder, patterns in (
        (root / "modules", (TEMP,)),
        (root / "known", (RECORD, TEMP)),
        (root / "phases", (PHASE_RECORD,)),
    ):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for child in folder.iterdir():
                named = any(p.match(child.name) for p in patterns)
                if named and child.is_file() and not child.is_symlink():
                    candidates.append(child)
    for path in candidates:
        with contextlib.suppress(FileNotFoundError):
            bytes_now = path.stat().st_size
            path.unlink()
            files += 1
            size += bytes_now
    return files, size


@dataclass(frozen=True)
class ShimTimeline:
    """One start as the shim saw it: marks are CLOCK_MONOTONIC ns, the client's clock too."""

    shim: str
    marks: list[tuple[str, int]]
    facts: dict[str, str] = field(default_factory=dict)


def take_record(token: str, root: Path | None = None) -> ShimTimeline | None:
    """Reads and removes the record a run asked for; None when the shim wrote none."""
    if not TOKEN.match(token):
        raise ValueError(f"not a phase token: {token!r}")
    path = (root or cache_dir()) / "phases" / f"{token}.json"
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_RECORD_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None
    finally:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            path.unlink()
    if len(raw) > MAX_RECORD_BYTES:
        return None
    try:
        data = json.loads(raw)
        marks = [(str(name), int(ns)) for name, ns in data["marks"]]
        facts = {str(k): str(v) for k, v in data.get("facts", {}).items()}
        return ShimTimeline(shim=str(data["shim"]), marks=marks, facts=facts)
    except (ValueError, TypeError, KeyError):
        return None


def sweep_records(prefix: str, root: Path | None = None, older_than_s: float = 0) -> int:
    """Removes the records (and their temp files) of tokens with this prefix, or only those
    older than older_than_s (a record is read within a second of its run's end)."""
    removed = 0
    now = time.time()
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for child in ((root or cache_dir()) / "phases").iterdir():
            if not (child.name.lstrip(".").startswith(prefix) and child.is_file()):
                continue
            if now - child.stat().st_mtime >= older_than_s:
                with contextlib.suppress(FileNotFoundError):
                    child.unlink()
                    removed += 1
    return removed


def phases_ns(timeline: ShimTimeline, spawned_ns: int, wall_ns: int) -> list[tuple[str, int]]:
    """The start split into consecutive phases, from the client's spawn to its return.

    Each phase ends at the shim's mark of that name; the first is the spawn-to-shim time
    (containerd creating the task and starting the shim) and the last ("client_return") the
    time from the guest's return to the client's. Marks out of order give [].
    """
    return split_run(timeline.marks, spawned_ns, wall_ns, "client_return")
