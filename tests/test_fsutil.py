from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from labreport.host import fsutil, proc


def test_json_is_stable_and_ends_with_newline(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    fsutil.atomic_write_json(target, {"b": 1, "a": [1, 2]})
    assert target.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'


def test_failed_write_keeps_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "report.md"
    target.write_text("old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        fsutil.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]


def test_creates_parent_directories(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c.txt"
    fsutil.atomic_write_text(target, "x")
    assert target.read_text() == "x"


def test_an_existing_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path: Path) -> None:
    kept = tmp_path / "kept.md"
    kept.write_text("old")
    kept.chmod(0o640)
    fsutil.atomic_write_text(kept, "new")
    assert kept.read_text() == "new" and (kept.stat().st_mode & 0o777) == 0o640
    old_umask = os.umask(0o077)
    try:
        fsutil.atomic_write_text(tmp_path / "new.md", "x")
    finally:
        os.umask(old_umask)
    assert ((tmp_path / "new.md").stat().st_mode & 0o777) == 0o600


def test_a_rename_that_fails_midway_leaves_the_old_report_and_no_new_chart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All or nothing for report.md and its charts: report.md's rename is the commit."""
    from labreport.report import render

    from .fakes import SYNTHETIC

    output = tmp_path / "report.md"
    old = render.render([SYNTHETIC])
    render.write(old, output)
    data = json.loads(SYNTHETIC.read_text())
    data["artifacts"][0]["size_bytes"] += 1_000_000  # a new sizes chart
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(data))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    new = render.render([changed])
    assert {c.name for c in new.charts} != {c.name for c in old.charts}
    real, calls = os.replace, []

    def fails_second(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("disk full")
        real(src, dst)

    monkeypatch.setattr(os, "replace", fails_second)
    with pytest.raises(OSError, match="disk full"):
        render.write(new, output)
    monkeypatch.setattr(os, "replace", real)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # the old report and its charts, nothing added, no temp file
    render.write(new, output)  # and when it works: the new charts, the old ones gone
    assert {p.name for p in (tmp_path / "report").iterdir()} == {
        render.MANIFEST,
        *(c.name for c in new.charts),
    }


def test_ctrl_c_during_the_renames_waits_for_them(tmp_path: Path) -> None:
    import signal

    files = {tmp_path / f"{n}.txt": str(n) for n in range(3)}
    with pytest.raises(KeyboardInterrupt), proc.signals_held():
        os.kill(os.getpid(), signal.SIGINT)  # pending until the block ends
        fsutil.atomic_write_all(files)
    assert all(path.read_text() == text for path, text in files.items())


def test_a_symlink_is_followed_and_a_fifo_refused(tmp_path: Path) -> None:
    from labreport.errors import LabreportError

    target = tmp_path / "real.json"
    target.write_text("old")
    (tmp_path / "link.json").symlink_to(target)
    fsutil.atomic_write_text(tmp_path / "link.json", "new")
    assert (tmp_path / "link.json").is_symlink() and target.read_text() == "new"
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(LabreportError, match="not a regular file"):
        fsutil.atomic_write_text(tmp_path / "pipe", "x")
