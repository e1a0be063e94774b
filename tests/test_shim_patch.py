"""The one patched dependency of the shims: what is taken out, and nothing else, or a clear
error when the published crate no longer has it (a synthetic crate stands in for it here)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from labreport.errors import LabreportError
from labreport.host import shim_patch

LOCK = """version = 4

[[package]]
name = "anyhow"
version = "1.0.0"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "aa"

[[package]]
name = "containerd-shimkit"
version = "0.1.2"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "bb"
dependencies = [
 "anyhow",
]
"""


def crate(files: dict[str, str], version: str = "0.1.2") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            member = tarfile.TarInfo(f"containerd-shimkit-{version}/{name}")
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def test_the_lock_names_the_patched_crate_as_a_path_crate_and_nothing_else_changes() -> None:
    patched = shim_patch._patched_lock(LOCK)
    assert patched == LOCK.replace(
        'source = "registry+https://github.com/rust-lang/crates.io-index"\nchecksum = "bb"\n', ""
    )
    assert 'checksum = "aa"' in patched


def test_only_the_second_run_of_the_hooks_is_taken_out(tmp_path: Path) -> None:
    before = "fn task_create() {\n" + shim_patch.SECOND_RUN + "        Ok(())\n}\n"
    data = crate({shim_patch.PATCHED_FILE: before, "Cargo.toml": "[package]\n"})
    shim_patch._patched_crate(data, "0.1.2", tmp_path)
    after = (tmp_path / shim_patch.PATCHED_FILE).read_text()
    assert after == before.replace(shim_patch.SECOND_RUN, shim_patch.INSTEAD)
    assert (tmp_path / "Cargo.toml").read_text() == "[package]\n"
    mtime = (tmp_path / "Cargo.toml").stat().st_mtime_ns
    (tmp_path / "stale.rs").write_text("left from another version")
    shim_patch._patched_crate(data, "0.1.2", tmp_path)  # again: unchanged files stay as they are
    assert (tmp_path / "Cargo.toml").stat().st_mtime_ns == mtime
    assert not (tmp_path / "stale.rs").exists()


@pytest.mark.parametrize("times", [0, 2])
def test_a_crate_without_exactly_one_such_call_is_refused(times: int, tmp_path: Path) -> None:
    source = "fn f() {\n" + shim_patch.SECOND_RUN * times + "}\n"
    with pytest.raises(LabreportError, match="no longer has the one second run"):
        shim_patch._patched_crate(crate({shim_patch.PATCHED_FILE: source}), "0.1.2", tmp_path)


def test_a_crate_with_a_path_out_of_it_is_refused(tmp_path: Path) -> None:
    data = crate({"../escape.rs": "x", shim_patch.PATCHED_FILE: shim_patch.SECOND_RUN})
    with pytest.raises(LabreportError, match="holds a path outside it"):
        shim_patch._patched_crate(data, "0.1.2", tmp_path)
    assert not (tmp_path.parent / "escape.rs").exists()
