"""Options, paths and config that would lose a run's work or change its meaning are refused
before anything is built, each in one error line with a hint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labreport import config
from labreport.analysis import sources
from labreport.errors import LabreportError
from labreport.report import render

from .conftest import lab_copy
from .fakes import SYNTHETIC
from .test_cli import run


def refused(tmp_path: Path, *args: str) -> list[str]:
    """Runs measure with args; it must fail in one error line without building anything."""
    state = tmp_path / "state"
    done = run("measure", *args, env={"LABREPORT_STATE_DIR": str(state)})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert not (state / "artifacts").exists() and not list(state.glob("run-*"))
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: ")
    return lines


@pytest.mark.parametrize("value", ["", ",", " , "])
def test_an_empty_runtime_list_is_not_all_runtimes(tmp_path: Path, value: str) -> None:
    lines = refused(tmp_path, "--runtime", value, "-o", str(tmp_path / "m.json"))
    assert lines[0] == "error: --runtime names no runtime"


def test_a_runtime_named_twice_is_refused(tmp_path: Path) -> None:
    lines = refused(tmp_path, "--runtime", "native,native", "-o", str(tmp_path / "m.json"))
    assert lines[0] == "error: --runtime names native more than once"
    lines = refused(tmp_path, "--skip", "ctr-runc", "--skip", "ctr-runc")
    assert lines[0] == "error: --skip names ctr-runc more than once"


def test_a_timeout_must_be_finite(tmp_path: Path) -> None:
    lines = refused(tmp_path, "--timeout", "inf", "-o", str(tmp_path / "m.json"))
    assert "not a finite number of seconds" in lines[0]  # Infinity is not JSON
    # NaN never reaches labreport: the option's own range check (>= 0.1) refuses it.
    done = run("measure", "--timeout", "nan", env={"LABREPORT_STATE_DIR": str(tmp_path / "s")})
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_output_paths_that_would_fail_at_the_end_fail_at_the_start(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    assert "is a directory" in refused(tmp_path, "-o", str(folder))[0]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "is not a directory" in refused(tmp_path, "-o", str(a_file / "m.json"))[0]
    lines = refused(tmp_path, "-o", str(tmp_path / "missing" / "m.json"))
    assert "does not exist" in lines[0] and lines[1] == "hint: create it"


def test_a_lab_name_cannot_escape_the_measurements_folder(tmp_path: Path) -> None:
    path = lab_copy(tmp_path, 'name = "lab12"', 'name = "../../x"')
    with pytest.raises(LabreportError, match=r"lab\.toml: name: String should match pattern"):
        config.load(path)


def test_an_image_cannot_come_from_an_optional_build(tmp_path: Path) -> None:
    path = lab_copy(tmp_path, 'build = "wasm"', 'build = "wasm-tinygo"')
    with pytest.raises(LabreportError, match="names the optional build 'wasm-tinygo'"):
        config.load(path)
    path = lab_copy(tmp_path, 'build = "wasm"', 'build = "nothing"')
    with pytest.raises(LabreportError, match="'nothing', which is not a build"):
        config.load(path)


def test_a_missing_templates_folder_is_an_error_not_the_defaults(tmp_path: Path) -> None:
    with pytest.raises(LabreportError, match="no such folder") as raised:
        render.render([SYNTHETIC], templates=tmp_path / "nonexistent")
    assert "templates/README.md" in raised.value.hint


def test_unknown_memory_is_said_not_made_up(tmp_path: Path) -> None:
    data = json.loads(SYNTHETIC.read_text())
    data["environment"]["memory_total_bytes"] = None
    path = tmp_path / "m.json"
    path.write_text(json.dumps(data))
    assert "RAM not known (/proc/meminfo unreadable)" in render.render([path]).text


def test_render_writes_the_report_and_its_charts_all_or_none(tmp_path: Path) -> None:
    output = tmp_path / "report.md"
    (tmp_path / "report").write_text("a file where the charts folder goes")
    with pytest.raises(LabreportError, match="report is not a directory"):
        render.write(render.render([SYNTHETIC]), output)
    assert not output.exists()  # no report that links to charts that do not exist
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # and no temp files
    done = run("render", str(SYNTHETIC), "-o", str(output))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == "hint: give a file path"


def test_a_fifo_among_measurement_files_does_not_hang(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "measurements"
    folder.mkdir()
    (folder / "lab12.json").write_bytes(SYNTHETIC.read_bytes())
    os.mkfifo(folder / "stuck.json")
    assert sources.default_sources(folder) == [folder / "lab12.json"]
    with pytest.raises(LabreportError, match=r"stuck\.json: not a regular file"):
        render.render([folder / "stuck.json"])


def test_absurdly_deep_json_is_one_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(LabreportError, match=r"deep\.json: nested too deeply"):
        render.render([deep])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{{ 1 / 0 }}", "broken.md.j2:2: ZeroDivisionError"),
        ('{{ "fast" | ms }}', "broken.md.j2:2: TypeError"),  # a filter on the wrong type
        ('{% include "broken.md.j2" %}', "RecursionError"),
    ],
)
def test_template_runtime_errors_name_the_template_and_line(
    tmp_path: Path, body: str, expected: str
) -> None:
    (tmp_path / "broken.md.j2").write_text("# title\n" + body + "\n")
    with pytest.raises(LabreportError, match=expected) as raised:
        render.render([SYNTHETIC], templates=tmp_path, template="broken.md.j2")
    assert raised.value.hint.startswith("fix the template")


def test_a_full_disk_is_said_as_one_wherever_it_surfaced(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A build log or a write that ends in ENOSPC is not a build error: the hint says so."""
    import typer

    from labreport import options
    from labreport.errors import LabreportError

    with pytest.raises(typer.Exit):
        options.exit_with(
            LabreportError("docker build failed: write /x: no space left on device", "fix it")
        )
    error, hint = capsys.readouterr().err.splitlines()[-2:]
    assert error.startswith("error: docker build failed")
    assert hint.startswith("hint: a disk is full")


def test_an_unwritable_state_directory_says_why_and_never_to_delete_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read-only file system, a folder of one's own without write permission, another user's:
    three causes, three messages; none proposes rm (a state folder may hold a user's files)."""
    import os

    from labreport.errors import LabreportError
    from labreport.host import paths

    monkeypatch.setenv("LABREPORT_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(os, "access", lambda *a, **k: False)
    real_statvfs = os.statvfs
    read_only = os.statvfs_result((0,) * 8 + (os.ST_RDONLY, 255))
    monkeypatch.setattr(os, "statvfs", lambda p: read_only)
    with pytest.raises(LabreportError) as raised:
        paths.made_state_dir()
    assert "read-only file system" in raised.value.message
    monkeypatch.setattr(os, "statvfs", real_statvfs)
    with pytest.raises(LabreportError) as raised:
        paths.made_state_dir()
    assert "is not writable" in raised.value.message  # this user's own folder
    assert "rm " not in raised.value.hint


def test_clean_all_never_takes_a_folder_labreport_did_not_make(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labreport.commands import clean
    from labreport.errors import LabreportError
    from labreport.inventory import leftovers

    mine = tmp_path / "my-folder"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    monkeypatch.setenv("LABREPORT_STATE_DIR", str(mine))
    removed: list[bool] = []
    monkeypatch.setattr(leftovers, "clean", lambda *a, **k: removed.append(True) or [])
    with pytest.raises(LabreportError, match="which labreport did not make"):
        clean.run(everything=True)
    assert not removed and (mine / "thesis.tex").exists()
    (mine / ".labreport-state").touch()  # labreport's own (its marker): cleaned
    clean.run(everything=True)
    assert removed
