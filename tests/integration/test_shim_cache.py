"""The caching shim's file cache, with the real shim binary and real files.

The shim's `--labreport-run STATE_DIR MODULE` mode runs a module in-process exactly as a
container start does (the same cache and phase code), so every fail-safe case can be made on
purpose in a directory of the test's own: each must end in a compile and the right output,
never a crash and never another module's code.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime

from labreport.host import shim_cache as shimcache
from labreport.host.shims import WASMTIME_AOT_SHIM

from .common import labreport
from .wagi_guest import printing_module

pytestmark = [pytest.mark.shim]


def module(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(printing_module(f"hello from module {name}\n"))
    return path


@pytest.fixture
def shim(needs: Callable[[str], None]) -> Path:
    needs(WASMTIME_AOT_SHIM.binary)
    found = WASMTIME_AOT_SHIM.find()
    assert found is not None
    return found


class Start:
    def __init__(self, shim: Path, state: Path) -> None:
        self.shim, self.state, self.count = shim, state, 0

    def __call__(self, wasm: Path, *wrap: str) -> tuple[str, dict[str, str]]:
        """One start; its stdout and the shim's facts (cache outcome, stored)."""
        self.count += 1
        token = f"test-{self.count}"
        done = subprocess.run(
            [*wrap, str(self.shim), "--labreport-run", str(self.state), str(wasm)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, shimcache.PHASES_ENV: token},
            check=False,
        )
        assert done.returncode == 0, done.stderr
        record = shimcache.take_record(token, self.state)
        assert record is not None, done.stderr
        assert [name for name, _ in record.marks][:3] == ["shim_main", "run_wasi", "engine"]
        assert [ns for _, ns in record.marks] == sorted(ns for _, ns in record.marks)
        return done.stdout, record.facts


@pytest.fixture
def start(shim: Path, tmp_path: Path) -> Start:
    return Start(shim, tmp_path / "state")


def only_entry(state: Path) -> Path:
    (entry,) = shimcache.entries(state)
    return entry.path


def test_first_start_compiles_and_stores_then_later_starts_map_the_entry(
    start: Start, tmp_path: Path
) -> None:
    a = module(tmp_path, "a")
    out, facts = start(a)
    assert out == "hello from module a\n"
    assert facts["cache"] == "miss: no entry" and facts["stored"] == "yes"
    (entry,) = shimcache.entries(start.state)
    assert entry.module_sha256 == hashlib.sha256(a.read_bytes()).hexdigest()
    assert facts["module_sha256"] == entry.module_sha256
    assert oct(start.state.stat().st_mode & 0o777) == "0o700"
    for _ in range(2):
        out, facts = start(a)
        assert out == "hello from module a\n" and facts["cache"] == "hit"
    assert "stored" not in facts


def damaged(damage: Callable[[Path], None], reason: str, start: Start, tmp_path: Path) -> None:
    """Damage the entry, then: a miss with this reason, the right output, a good entry again."""
    a = module(tmp_path, "a")
    start(a)
    damage(only_entry(start.state))
    out, facts = start(a)
    assert out == "hello from module a\n"
    assert facts["known"] == "entry is not the one checked", facts
    assert facts["cache"] == f"miss: {reason}", facts
    assert facts["stored"] == "yes"
    assert start(a)[1]["cache"] == "hit"


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def truncate_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def cut_before_trailer(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:1000] + data[-64:])


def other_engine_hash(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-24] ^= 0xFF  # the trailer's engine hash: bytes 40..48 of the 64
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (flip_a_byte, "entry checksum mismatch (corrupt)"),
        (truncate_half, "entry no trailer (truncated or not an entry)"),
        (cut_before_trailer, "entry length differs from its trailer (truncated)"),
        (other_engine_hash, "entry written by another engine (stale)"),
        (lambda p: p.write_bytes(b""), "entry shorter than its trailer (truncated)"),
    ],
    ids=["corrupt", "truncated", "cut", "stale-engine", "empty"],
)
def test_a_damaged_entry_is_compiled_again(
    damage: Callable[[Path], None], reason: str, start: Start, tmp_path: Path
) -> None:
    damaged(damage, reason, start, tmp_path)


def test_code_of_a_foreign_wasmtime_is_refused_by_the_engine(start: Start, tmp_path: Path) -> None:
    """A well-formed entry (right module, engine hash, length, CRC) whose artifact another
    wasmtime (PyPI's, a different version) compiled: the engine's own check refuses it."""

    def foreign(path: Path) -> None:
        wasm = (tmp_path / "a.wasm").read_bytes()
        artifact = wasmtime.Module(wasmtime.Engine(), wasm).serialize()
        old = path.read_bytes()[-64:]
        trailer = old[:48] + struct.pack("<QI", len(artifact), zlib.crc32(artifact)) + old[60:]
        path.write_bytes(artifact + trailer)

    a = module(tmp_path, "a")
    start(a)
    foreign(only_entry(start.state))
    out, facts = start(a)
    assert out == "hello from module a\n"
    assert facts["cache"].startswith("miss: wasmtime refused the entry"), facts


def test_another_modules_entry_under_this_name_never_runs(start: Start, tmp_path: Path) -> None:
    a, b = module(tmp_path, "a"), module(tmp_path, "b")
    start(b)
    b_entry = only_entry(start.state)
    a_name = b_entry.name.replace(
        hashlib.sha256(b.read_bytes()).hexdigest(), hashlib.sha256(a.read_bytes()).hexdigest()
    )
    b_entry.rename(b_entry.with_name(a_name))
    out, facts = start(a)
    assert out == "hello from module a\n"
    assert facts["cache"] == "miss: entry its trailer names another module"


def test_a_directory_or_symlink_in_place_of_an_entry(start: Start, tmp_path: Path) -> None:
    a = module(tmp_path, "a")
    start(a)
    entry = only_entry(start.state)
    entry.rename(tmp_path / "elsewhere")
    entry.symlink_to(tmp_path / "elsewhere")
    out, facts = start(a)
    assert out == "hello from module a\n"
    assert facts["cache"].startswith("miss: entry not readable"), facts  # O_NOFOLLOW
    assert facts["stored"] == "yes" and not entry.is_symlink()
    entry.unlink()
    entry.mkdir()
    out, facts = start(a)
    assert facts["cache"] == "miss: entry is not a regular file"
    assert facts["stored"].startswith("no: "), facts  # cannot rename over a directory
    assert out == "hello from module a\n"


def test_missing_directories_are_made_again(start: Start, tmp_path: Path) -> None:
    a = module(tmp_path, "a")
    assert not start.state.exists()
    start(a)
    for entry in (start.state / "modules").iterdir():
        entry.unlink()
    (start.state / "modules").rmdir()
    out, facts = start(a)
    assert out == "hello from module a\n"
    assert facts["cache"] == "miss: no entry" and facts["stored"] == "yes"
    assert start(a)[1]["cache"] == "hit"


def test_a_read_only_cache_still_runs_the_module(start: Start, tmp_path: Path) -> None:
    """modules/ bind-mounted read-only in a mount namespace of the test's own (the host's
    mounts are not touched): the start compiles, says why nothing was stored, and runs."""
    a = module(tmp_path, "a")
    modules = start.state / "modules"
    modules.mkdir(parents=True)
    script = f'mount --bind {modules} {modules} && mount -o remount,bind,ro {modules} && exec "$@"'
    wrap = ("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh")
    out, facts = start(a, *wrap)
    assert out == "hello from module a\n"
    assert facts["cache"] == "miss: no entry"
    assert facts["stored"] == "no: Read-only file system (os error 30)", facts
    assert shimcache.entries(start.state) == []


def test_the_bound_evicts_the_oldest_entry(
    start: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = module(tmp_path, "a"), module(tmp_path, "b")
    start(a)
    size = only_entry(start.state).stat().st_size
    monkeypatch.setenv("LABREPORT_WASMTIME_CACHE_MAX_BYTES", str(size + size // 2))
    start(b)
    (entry,) = shimcache.entries(start.state)
    assert entry.module_sha256 == hashlib.sha256(b.read_bytes()).hexdigest()


def test_a_cleared_cache_is_rebuilt(start: Start, tmp_path: Path) -> None:
    a = module(tmp_path, "a")
    start(a)
    (start.state / "modules" / "not-ours.txt").write_text("kept")
    process = labreport("cache", "--clear", env={"LABREPORT_WASMTIME_CACHE": str(start.state)})
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert stdout.startswith("removed 2 file(s)")  # the entry and the module file's record
    assert shimcache.entries(start.state) == []
    assert list((start.state / "known").iterdir()) == []
    assert (start.state / "modules" / "not-ours.txt").read_text() == "kept"
    out, facts = start(a)
    assert out == "hello from module a\n"
    assert facts["cache"] == "miss: no entry" and facts["stored"] == "yes"
    assert start(a)[1]["cache"] == "hit"


def marks(start: Start, wasm: Path) -> tuple[str, dict[str, str], list[str]]:
    """One start with its phase names."""
    start.count += 1
    token = f"test-{start.count}"
    done = subprocess.run(
        [str(start.shim), "--labreport-run", str(start.state), str(wasm)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, shimcache.PHASES_ENV: token},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = shimcache.take_record(token, start.state)
    assert record is not None
    return done.stdout, record.facts, [name for name, _ in record.marks]


def test_a_known_module_file_is_neither_read_nor_hashed(start: Start, tmp_path: Path) -> None:
    a = module(tmp_path, "a")
    digest = hashlib.sha256(a.read_bytes()).hexdigest()
    out, facts, names = marks(start, a)
    assert facts["known"] == "no record" and facts["key"] == "sha256 of the module"
    assert "read" in names and "key" in names
    (record,) = (start.state / "known").iterdir()
    assert record.stat().st_size == 156
    out, facts, names = marks(start, a)
    assert out == "hello from module a\n"
    assert facts["key"] == "known file" and facts["cache"] == "hit", facts
    assert facts["module_sha256"] == digest
    assert "read" not in names and "key" not in names, names


def test_a_module_changed_in_place_is_hashed_again_even_with_its_old_mtime(
    start: Start, tmp_path: Path
) -> None:
    """Same inode, same size, the modification time put back: the change time still moved, so
    the record no longer holds and the new bytes are hashed (and compiled)."""
    a, b = module(tmp_path, "a"), module(tmp_path, "b")
    start(a)
    assert start(a)[1]["key"] == "known file"
    before = a.stat()
    with a.open("r+b") as file:  # in place: the same inode
        file.write(b.read_bytes())
    os.utime(a, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (a.stat().st_ino, a.stat().st_size, a.stat().st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns,
    )  # fmt: skip
    out, facts = start(a)
    assert out == "hello from module b\n"
    assert facts["known"] == "no record" and facts["cache"] == "miss: no entry", facts
    out, facts = start(a)
    assert out == "hello from module b\n" and facts["key"] == "known file"


def test_a_copy_of_a_module_is_hashed_once_then_known(start: Start, tmp_path: Path) -> None:
    a = module(tmp_path, "a")
    start(a)
    copy = tmp_path / "copy.wasm"
    copy.write_bytes(a.read_bytes())
    out, facts = start(copy)
    assert out == "hello from module a\n"
    assert facts["known"] == "no record" and facts["cache"] == "hit", facts  # by its sha256
    assert start(copy)[1]["key"] == "known file"
    assert start(a)[1]["key"] == "known file"


def test_a_damaged_record_is_a_miss_and_is_written_again(start: Start, tmp_path: Path) -> None:
    a = module(tmp_path, "a")
    start(a)
    (record,) = (start.state / "known").iterdir()
    data = bytearray(record.read_bytes())
    data[100] ^= 1
    record.write_bytes(bytes(data))
    out, facts = start(a)
    assert out == "hello from module a\n"
    assert facts["known"] == "record damaged" and facts["cache"] == "hit", facts
    assert start(a)[1]["key"] == "known file"


def test_forgetting_a_module_removes_its_entry_and_the_records_that_point_to_it(
    start: Start, tmp_path: Path
) -> None:
    a, b = module(tmp_path, "a"), module(tmp_path, "b")
    start(a)
    start(b)
    assert len(list((start.state / "known").iterdir())) == 2
    assert shimcache.forget(hashlib.sha256(a.read_bytes()).hexdigest(), start.state) == 1
    (kept,) = (start.state / "known").iterdir()
    assert start(b)[1]["key"] == "known file"  # b's record is the one kept
    assert kept.exists()
    out, facts = start(a)
    assert out == "hello from module a\n" and facts["cache"] == "miss: no entry"
