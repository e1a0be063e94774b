"""Files: where a write may land, atomic writes (a reader sees the old file or the new one,
never half of one), and their sha256.

Every file labreport writes goes through destination() first. The rules, the same for every
command: a symlink is followed while it stays inside the folder written to (the file it points
to is replaced, the link stays), and refused, named, where it leads out; a folder, a
FIFO, a device or a socket is refused; a name longer than the file system allows is refused with
that name; an existing file keeps its mode, a new one gets the usual 0644 less the umask.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from labreport.errors import LabreportError
from labreport.host import proc

TEMP_PREFIX = ".labreport-"  # short, so that a long but legal target name still fits
NEW_FILE_MODE = 0o644
# The signals that would stop a command between the renames that commit several files.


def mounts_under(root: Path) -> list[str]:
    """Mount points at or under root, deepest first (from /proc/self/mountinfo)."""
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == str(root) or point.startswith(f"{root}/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


def unmount(point: str) -> None:
    """Detach a mount (lazily: a busy one goes when its last user does)."""
    proc.run(["umount", "-l", point], timeout_s=60, check=False)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """A regular file's bytes, its size checked before it is read (and while it is)."""
    try:  # O_NONBLOCK: a FIFO is refused, not waited on
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError as error:
        raise LabreportError(f"{path}: no such file", "check the path") from error
    except OSError as error:  # a loop, no permission
        raise LabreportError(
            f"{path}: cannot be read: {error.strerror}", "check the path and its permissions"
        ) from error
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise LabreportError(f"{path}: {kind}", f"pass a {what}")
        os.set_blocking(descriptor, True)
        data = handle.read(limit + 1) if info.st_size <= limit else b""
    if info.st_size > limit or len(data) > limit:
        raise LabreportError(
            f"{path}: {max(info.st_size, len(data)):,} bytes, more than a {what} holds "
            f"({limit >> 20} MiB)",
            f"pass a {what} that labreport wrote",
        )
    return data


@contextlib.contextmanager
def exclusive(path: Path, busy: str, hint: str, note: str = "") -> Iterator[None]:
    """An advisory lock (flock) on path, held for the block: a file (made if missing, note
    written in it for whoever finds it held) or a folder (nothing written). Held elsewhere: one
    error, busy and what the holder noted."""
    if path.is_dir():
        descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            holder = ""
            with contextlib.suppress(OSError, UnicodeDecodeError):
                holder = "" if path.is_dir() else path.read_text(encoding="utf-8").strip()
            raise LabreportError(f"{busy}{f' ({holder})' if holder else ''}", hint) from error
        if note and not path.is_dir():
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, note.encode("utf-8", "replace"), 0)
        yield
    finally:
        os.close(descriptor)


def _name_max(folder: Path) -> int:
    with contextlib.suppress(OSError):
        return os.pathconf(folder, "PC_NAME_MAX")
    return 255


def _name_fits(path: Path, label: str) -> None:
    limit = _name_max(path.parent if path.parent.is_dir() else Path("/"))
    if len(os.fsencode(path.name)) > limit:
        raise LabreportError(
            f"{label}: the file name is longer than the {limit} bytes this file system allows",
            "give a shorter name",
        )


def shown(path: Path) -> str:
    """A path as text a report can hold: a byte of the name that is not UTF-8 becomes U+FFFD."""
    return path.as_posix().encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def real_path(path: Path, what: str) -> Path:
    """path with every link followed; a link loop is one error naming it."""
    try:
        return path.resolve()
    except (RuntimeError, OSError) as error:  # RuntimeError: a loop, before Python 3.13
        raise LabreportError(
            f"{what}: {path} is a symbolic link loop", "remove the link or give another path"
        ) from error


def confined(root: Path, path: Path, what: str) -> Path:
    """path, which must stay inside root once every link is followed (the one check for every
    file labreport reads or writes in a lab folder); a link that leads out is refused, named.
    Returns path as given."""
    real_root, real = real_path(root, what), real_path(path, what)
    if real.is_relative_to(real_root):
        return path
    step = root
    for part in path.relative_to(root).parts if path.is_relative_to(root) else path.parts:
        step = step / part
        if step.is_symlink() and not real_path(step, what).is_relative_to(real_root):
            raise LabreportError(
                f"{what}: {step} is a link to {os.readlink(step)}, outside {root}",
                f"labreport reads and writes only inside {root}: remove the link",
            )
    raise LabreportError(f"{what}: {path} is outside {root}", f"give a path inside {root}")


def destination(path: Path, what: str = "", root: Path | None = None) -> Path:
    """The file a write to path replaces (a symlink followed while it stays inside root, by
    default path's own folder), refused with one clear error when it is anything but a regular
    file or a new one (the writer makes a missing folder)."""
    label = what or str(path)
    _name_fits(path, label)  # first: a name too long makes every look at the path fail
    confined(root or path.parent, path, label)
    target = real_path(path, label) if path.is_symlink() else path
    if target != path:
        _name_fits(target, label)
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise LabreportError(f"{label}: {parent} is not a directory", "give a file path")
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target
    except OSError as error:  # a link loop, a component that is a file
        raise LabreportError(
            f"{label}: cannot be written ({error.strerror})", "give the path of a regular file"
        ) from error
    if stat.S_ISDIR(mode):
        raise LabreportError(f"{label} is a directory", "give a file name inside it")
    if not stat.S_ISREG(mode):
        raise LabreportError(
            f"{label} is not a regular file (a FIFO, device or socket)",
            "labreport replaces only regular files: give another path",
        )
    return target


def refuse_inputs(outputs: Iterable[Path], inputs: Iterable[Path], option: str) -> None:
    """An output that is one of the command's inputs would destroy it: refused before work.
    The same file by device and inode (a hard link, another path to it), or by resolved name
    (an input that does not exist yet)."""

    def identity(path: Path) -> tuple[int, int] | None:
        with contextlib.suppress(OSError):
            info = path.stat()
            return info.st_dev, info.st_ino
        return None

    given = list(inputs)
    by_identity = {key: path for path in given if (key := identity(path)) is not None}
    by_name = {path.resolve(): path for path in given}
    for output in outputs:
        key = identity(output)
        real = real_path(output, f"{option} {output}")
        clash = (by_identity.get(key) if key else None) or by_name.get(real)
        if clash is not None:
            raise LabreportError(
                f"{option} {output} is one of this command's inputs ({clash})",
                "write the output to another file; the input was left as it is",
            )


def _temp_beside(target: Path, data: bytes) -> str:
    """data in a synced temp file beside target, with the mode target has (or a new file's)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(dir=target.parent, prefix=TEMP_PREFIX, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = NEW_FILE_MODE & ~umask
        os.chmod(temp_name, mode)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    return temp_name


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file beside the destination, fsync it, then rename over it."""
    atomic_write_all({path: data})


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dump_json(value: Any) -> str:
    """Stable JSON: sorted keys, two-space indent, trailing newline, so diffs stay readable."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, dump_json(value))


def atomic_write_all(
    files: Mapping[Path, str | bytes], commit_last: Path | None = None, root: Path | None = None
) -> None:
    """Write several files so that either all are replaced or none is: every one goes to a
    temp file beside its destination first; only when all are written are they renamed, with
    Ctrl-C and SIGTERM held until the renames are done (commit_last, if given, is renamed last:
    the file whose rename makes the others part of the result)."""
    targets = {path: destination(path, root=root) for path in files}
    temps: dict[Path, str] = {}
    try:
        for path, content in files.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            temps[targets[path]] = _temp_beside(targets[path], data)
        last = targets.get(commit_last) if commit_last is not None else None
        order = sorted(temps, key=lambda target: target == last)  # False first: last is last
        with proc.signals_held():
            for target in order:
                os.replace(temps[target], target)
                del temps[target]
    finally:
        for temp_name in temps.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
    for folder in {target.parent for target in targets.values()}:
        _sync_folder(folder)
