"""The fault catalogue: bad input and faults a new user or a tester meets, each run through the
real CLI (a child process), table-driven.

Every case asserts the exit code, an `error:` line followed by a `hint:` line as the last two
lines of stderr, the words the error must contain, no traceback, and that no output or partial
file was written (or that the one a user had is unchanged). The cases that need an engine run
where it is present (they fail in CI if it is not) and count what the engine holds before and
after: nothing may be leaked. The signal cases interrupt a real run whose program never exits:
exit 130, the partial file kept and named, the program's process gone.
"""

# ruff: noqa: E501  (a table: one case per line reads better than wrapped ones)
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from labreport.host import proc

from .conftest import ROOT, lab_copy, require
from .fakes import SYNTHETIC
from .test_cli import run


@dataclass(frozen=True)
class Case:
    """One fault: what to set up (returns the argv), what must happen."""

    name: str
    area: str
    make: Callable[[Path], list[str]]
    error: str  # words the `error:` line must contain
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    needs: tuple[str, ...] = ()


def measure_with(old: str, new: str) -> Callable[[Path], list[str]]:
    return lambda t: ["measure", "--config", str(lab_copy(t, old, new)), "-o", str(t / "out.json")]


def written(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def synthetic(tmp_path: Path, change: Callable[[dict[str, object]], object]) -> Path:
    data = json.loads(SYNTHETIC.read_text())
    change(data)
    return written(tmp_path, "m.json", json.dumps(data))


def render_of(make_input: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    return lambda t: ["render", str(make_input(t)), "-o", str(t / "report.md")]


def templates_with(body: str) -> Callable[[Path], list[str]]:
    def make(tmp_path: Path) -> list[str]:
        folder = tmp_path / "templates"
        shutil.copytree(ROOT / "templates", folder)
        (folder / "report.md.j2").write_text("# report\n" + body + "\n")
        return [
            "render",
            str(SYNTHETIC),
            "--templates",
            str(folder),
            "-o",
            str(tmp_path / "report.md"),
        ]

    return make


def other_lab(tmp_path: Path) -> list[str]:
    data = json.loads(SYNTHETIC.read_text())
    data["lab"] = "lab13"
    return ["render", str(SYNTHETIC), str(written(tmp_path, "b.json", json.dumps(data))),
            "-o", str(tmp_path / "report.md")]  # fmt: skip


def symlink_loop(tmp_path: Path) -> Path:
    (tmp_path / "loop.json").symlink_to(tmp_path / "loop.json")
    return tmp_path / "loop.json"


def fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "pipe.json")
    return tmp_path / "pipe.json"


def a_file(tmp_path: Path) -> Path:
    return written(tmp_path, "plain", "x")


def empty_folder(tmp_path: Path) -> Path:
    (tmp_path / "none").mkdir()
    return tmp_path / "none"


def broken_dockerfile(tmp_path: Path) -> list[str]:
    lab_copy(tmp_path)
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\nCOPY no-such-file /x\n")
    return ["measure", "--config", str(tmp_path / "lab.toml"), "--runtime", "docker-cli",
            "-o", str(tmp_path / "out.json")]  # fmt: skip


def report_over(pick: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    """render with a copy of the templates, -o naming one of its inputs (picked)."""

    def make(tmp_path: Path) -> list[str]:
        shutil.copytree(ROOT / "templates", tmp_path / "templates")
        data = written(tmp_path, "m.json", SYNTHETIC.read_text())
        return ["render", str(data), "--templates", str(tmp_path / "templates"),
                "-o", str(pick(tmp_path))]  # fmt: skip

    return make


def numbers(text: str) -> Callable[[Path], Path]:
    """The synthetic file with its first wall_ns written as text (no float, no int limit)."""

    def make(tmp_path: Path) -> Path:
        raw = SYNTHETIC.read_text()
        first = json.loads(raw)["samples"][0]["wall_ns"]
        return written(
            tmp_path, "m.json", raw.replace(f'"wall_ns": {first}', f'"wall_ns": {text}', 1)
        )

    return make


def no_docker_cli_path(tmp_path: Path) -> dict[str, str]:
    """A PATH with every program doctor looks for but docker (links to the real ones)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("ctr", "containerd", "buildah", "hyperfine", "go", "tinygo", "ip",
                 "containerd-shim-wasmtime-v1", "containerd-shim-wasmtime-aot-v1"):  # fmt: skip
        found = shutil.which(name)
        if found:
            (folder / name).symlink_to(found)
    return {"PATH": str(folder)}


BUILD = '[builds.{name}]\ndescription = "x"\ntoolchain = "command"\ncommand = [{command}]\noutput = "x"\n\n'


def folder(path: Path) -> Path:
    path.mkdir()
    return path


def lab_with_template(tmp_path: Path, body: str) -> Path:
    """A lab folder with a measurement file and its own report template."""
    lab = tmp_path / "lab"
    (lab / "templates").mkdir(parents=True)
    (lab / "measurements").mkdir()
    shutil.copy(SYNTHETIC, lab / "measurements" / "m.json")
    (lab / "templates" / "report.md.j2").write_text(body)
    return lab


M = "measure"
CASES = [
    # -- config --
    Case("config missing", "config", lambda t: [M, "--config", str(t / "none.toml")], "not found"),
    Case("config is a folder", "config", lambda t: ["build", "--config", str(t)], "directory"),
    Case("config not TOML", "config", lambda t: [M, "--config", str(written(t, "l.toml", "= ="))], "TOML"),
    Case("config not UTF-8", "config", lambda t: [M, "--config", str(written(t, "l.toml", b"\xff\xfe"))], "l.toml"),
    Case("config newer schema", "config", measure_with("schema_version = 2", "schema_version = 9"), "schema_version"),
    Case("config unknown key", "config", measure_with('title = "', 'colour = "red"\ntitle = "'), "colour"),
    Case("config name escapes", "config", measure_with('name = "lab12"', 'name = "../../x"'), "name"),
    Case("config image from optional build", "config", measure_with('build = "wasm"', 'build = "wasm-tinygo"'), "optional build"),
    Case("config image from no build", "config", measure_with('build = "wasm"', 'build = "nothing"'), "not a build"),
    Case("config app folder missing", "config", measure_with('app_dir = "app"', 'app_dir = "gone"'), "gone"),
    Case("config unknown rule", "config", measure_with('rule = "json"', 'rule = "jsonish"'), "check.rules.0"),
    Case("config unknown toolchain", "config", measure_with('toolchain = "go"', 'toolchain = "gradle"'), "builds.native.toolchain"),
    Case("config unknown placeholder", "config", measure_with("[builds.native]", BUILD.format(name="odd", command='"cp", "{input}", "{output}"') + "[builds.native]"), "unknown placeholder {input}"),
    Case("config builder unknown", "config", measure_with('builder = "go"', 'builder = "bazel"'), "image.builder"),
    Case("config build command fails", "config", lambda t: [M, "--config", str(lab_copy(t, "[builds.native]", BUILD.format(name="broken", command='"false"') + "[builds.native]")), "--runtime", "native", "-o", str(t / "o.json")], "builds.broken (false)", needs=("go",)),
    Case("lab folder missing", "config", lambda t: [M, "--lab", str(t / "none")], "no such folder"),
    Case("lab and config both", "config", lambda t: [M, "--lab", str(t), "--config", str(t / "lab.toml")], "both name a lab"),
    Case("new lab exists", "config", lambda t: ["new-lab", "x", "--from", str(ROOT), "--into", str(folder(t / "x").parent)], "already exists"),
    Case("new lab bad name", "config", lambda t: ["new-lab", "../x", "--from", str(ROOT), "--into", str(t)], "not a lab name"),
    Case("lab template missing", "config", lambda t: ["render", "--lab", str(lab_with_template(t, '{% include "partials/nope.md.j2" %}'))], "partials/nope.md.j2 not found"),
    # -- options --
    Case("runtime list empty", "options", lambda t: [M, "--runtime", ",", "-o", str(t / "o.json")], "names no runtime"),
    Case("runtime named twice", "options", lambda t: [M, "--runtime", "native,native"], "more than once"),
    Case("runtime unknown", "options", lambda t: [M, "--runtime", "podman"], "podman"),
    Case("skip unknown", "options", lambda t: [M, "--skip", "docker"], "docker"),
    Case("timeout infinite", "options", lambda t: [M, "--timeout", "inf"], "finite"),
    Case("timeout below range", "options", lambda t: [M, "--timeout", "0"], "--timeout"),
    Case("runs zero", "options", lambda t: [M, "--runs", "0"], "--runs"),
    Case("runs not a number", "options", lambda t: [M, "--runs", "many"], "--runs"),
    Case("unknown option", "options", lambda t: [M, "--frobnicate"], "--frobnicate"),
    Case("unknown command", "options", lambda t: ["frobnicate"], "frobnicate"),
    Case("containerd choice unknown", "options", lambda t: [M, "--containerd", "elsewhere"], "elsewhere"),
    Case("engine choice unknown", "options", lambda t: [M, "--engine", "nowhere"], "nowhere"),
    Case("compare format unknown", "options", lambda t: ["compare", str(SYNTHETIC), str(SYNTHETIC), "--format", "xml"], "xml"),
    Case("compare argument missing", "options", lambda t: ["compare"], "Missing argument"),
    Case("resume with nothing to resume", "options", lambda t: [M, "--resume", "-o", str(t / "o.json")], "no partial measurement"),
    Case("resume a complete file", "options", lambda t: [M, "--resume", "-o", str(t / "o.json")] if written(t, "o.partial.json", SYNTHETIC.read_text()) else [], "not a partial measurement"),
    # -- environment --
    Case("docker socket missing", "environment", lambda t: ["build"], "not reachable",
         env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}),
    Case("docker host nonsense", "environment", lambda t: ["build"], "gopher://x",
         env={"DOCKER_HOST": "gopher://x"}),
    Case("docker context unknown", "environment", lambda t: [M, "--context", "nosuch", "-o", str(t / "o.json")], "nosuch"),
    Case("state folder is a file", "environment", lambda t: [M, "--runtime", "native", "-o", str(t / "o.json")],
         "state directory", env={"LABREPORT_STATE_DIR": "/etc/hostname"}),
    # -- file system --
    Case("output is a folder", "file system", lambda t: [M, "-o", str(t)], "is a directory"),
    Case("output under a file", "file system", lambda t: [M, "-o", str(a_file(t) / "o.json")], "not a directory"),
    Case("output folder missing", "file system", lambda t: [M, "-o", str(t / "no" / "o.json")], "does not exist"),
    Case("output in /proc", "file system", lambda t: [M, "-o", "/proc/labreport.json"], "/proc"),
    Case("report under a file", "file system", lambda t: ["render", str(SYNTHETIC), "-o", str(a_file(t) / "r.md")], "plain"),
    Case("report is a folder", "file system", lambda t: ["render", str(SYNTHETIC), "-o", str(t)], "is a directory"),
    Case("input is a symlink loop", "file system", render_of(symlink_loop), "loop.json"),
    Case("input is a FIFO", "file system", render_of(fifo), "not a regular file"),
    Case("input folder empty", "file system", render_of(empty_folder), "none"),
    Case("templates folder missing", "file system", lambda t: ["render", str(SYNTHETIC), "--templates", str(t / "no")], "no such folder"),
    # -- measurement files --
    Case("file missing", "measurement files", render_of(lambda t: t / "missing.json"), "no such file"),
    Case("file empty", "measurement files", render_of(lambda t: written(t, "m.json", "")), "not valid JSON"),
    Case("file truncated", "measurement files", render_of(lambda t: written(t, "m.json", SYNTHETIC.read_text()[:5000])), "not valid JSON"),
    Case("file not UTF-8", "measurement files", render_of(lambda t: written(t, "m.json", b"\xff" * 10)), "not valid JSON"),
    Case("file a JSON list", "measurement files", render_of(lambda t: written(t, "m.json", "[1, 2]")), "not a labreport measurement"),
    Case("file foreign JSON", "measurement files", render_of(lambda t: written(t, "m.json", '{"name": "x"}')), "not a labreport measurement"),
    Case("file newer schema", "measurement files", render_of(lambda t: synthetic(t, lambda d: d.update(schema_version=99))), "schema_version 99"),
    Case("file unknown schema", "measurement files", render_of(lambda t: synthetic(t, lambda d: d.update(schema_version="2"))), "schema_version '2'"),
    Case("file bad field", "measurement files", render_of(lambda t: synthetic(t, lambda d: d["samples"][0].update(wall_ns=-1))), "samples.0.wall_ns"),
    Case("file unknown field", "measurement files", render_of(lambda t: synthetic(t, lambda d: d.update(extra=1))), "extra"),
    Case("file nested too deep", "measurement files", render_of(lambda t: written(t, "m.json", "[" * 100_000 + "]" * 100_000)), "nested too deeply"),
    Case("files of two labs", "measurement files", other_lab, "lab13"),
    # -- templates --
    Case("template syntax error", "templates", templates_with("{% if %}"), "report.md.j2"),
    Case("template unknown filter", "templates", templates_with("{{ 1 | nosuchfilter }}"), "nosuchfilter"),
    Case("template division by zero", "templates", templates_with("{{ 1 / 0 }}"), "report.md.j2:2"),
    Case("template filter on wrong type", "templates", templates_with('{{ "x" | ms }}'), "report.md.j2:2"),
    Case("template includes itself", "templates", templates_with('{% include "report.md.j2" %}'), "report.md.j2"),
    Case("template missing", "templates", lambda t: ["render", str(SYNTHETIC), "--template", "none.j2", "-o", str(t / "r.md")], "none.j2"),
    # -- engines --
    Case("a build that fails", "engines", broken_dockerfile, "docker build", needs=("docker-engine", "go")),
    # -- an output that is an input (data loss) --
    Case("report over its measurement file", "output is input", report_over(lambda t: t / "m.json"), "one of this command's inputs"),
    Case("report over a template", "output is input", report_over(lambda t: t / "templates" / "report.md.j2"), "one of this command's inputs"),
    Case("report over a template's partial", "output is input", report_over(lambda t: t / "templates" / "partials" / "sizes.md.j2"), "one of this command's inputs"),
    Case("measure over its lab.toml", "output is input", lambda t: [M, "--config", str(lab_copy(t)), "-o", str(t / "lab.toml")], "one of this command's inputs"),
    Case("measure over a source file", "output is input", lambda t: [M, "--config", str(lab_copy(t)), "-o", str(t / "app" / "main.go")], "one of this command's inputs"),
    # -- paths in lab.toml stay inside the lab --
    Case("config app folder outside the lab", "config paths", measure_with('app_dir = "app"', 'app_dir = "/etc"'), "outside the lab's folder"),
    Case("config app folder climbs out", "config paths", measure_with('app_dir = "app"', 'app_dir = "../.."'), "outside the lab's folder"),
    Case("config dockerfile outside the lab", "config paths", measure_with('dockerfile = "Dockerfile"', 'dockerfile = "../../../../etc/shadow"'), "image.dockerfile"),
    Case("config source outside the lab", "config paths", measure_with('sources = ["main.go"', 'sources = ["/etc/passwd", "main.go"'), "sources"),
    Case("config build output is a path", "config paths", measure_with('output = "moscow-time"', 'output = "/etc/cron.d/x"'), "builds.native.output"),
    # -- what is at an output path --
    Case("report onto a FIFO", "output paths", lambda t: ["render", str(SYNTHETIC), "-o", str(fifo(t))], "not a regular file"),
    Case("report onto a device", "output paths", lambda t: ["render", str(SYNTHETIC), "-o", "/dev/null"], "not a regular file"),
    Case("measure onto a FIFO", "output paths", lambda t: [M, "--runtime", "native", "-o", str(fifo(t))], "not a regular file"),
    Case("report into a folder named with a slash", "output paths", lambda t: ["render", str(SYNTHETIC), "-o", f"{t}/newdir/"], "names a folder"),
    Case("report name too long", "output paths", lambda t: ["render", str(SYNTHETIC), "-o", str(t / ("r" * 300 + ".md"))], "longer than"),
    Case("measure name too long, before any build", "output paths", lambda t: [M, "-o", str(t / ("m" * 300 + ".json"))], "longer than"),
    # -- templates are untrusted --
    Case("template reaches Python internals", "sandbox", templates_with("{{ ctx.__class__.__init__.__globals__ }}"), "unsafe"),
    Case("template reaches os through a global", "sandbox", templates_with('{{ cycler.__init__.__globals__.os.popen("id").read() }}'), "unsafe"),
    Case("template calls a method of a path", "sandbox", templates_with('{{ ctx.sources[0].measurement.environment.__class__ }}'), "unsafe"),
    Case("template makes a huge string", "sandbox", templates_with('{{ "x" * 10**10 }}'), "beyond the limit"),
    Case("template makes a huge number", "sandbox", templates_with("{{ 10 ** 10000000 }}"), "beyond the limit"),
    Case("template output far too large", "sandbox", templates_with('{% for i in range(100000) %}{{ "x" * 1000 }}{% endfor %}'), "passed"),
    # -- numbers and bytes that used to end in a traceback --
    Case("file integer beyond float range", "tracebacks", render_of(numbers("1" + "0" * 400)), "out of range"),
    Case("file integer of 5000 digits", "tracebacks", render_of(numbers("9" * 5000)), "out of range"),
    Case("file number infinite", "tracebacks", render_of(numbers("Infinity")), "not a number"),
    Case("compare a file beyond range", "tracebacks", lambda t: ["compare", str(SYNTHETIC), str(numbers("1" + "0" * 400)(t))], "out of range"),
    Case("report not UTF-8 under --check", "tracebacks", lambda t: ["render", str(SYNTHETIC), "--check", "-o", str(written(t, "report.md", b"\xff\xfe stale"))], "differ", code=1),
    Case("config UTC offset impossible", "tracebacks", measure_with("utc_offset_hours = 3", "utc_offset_hours = 99"), "utc_offset_hours"),
    # -- wrong answers with exit 0 --
    Case("compare two labs", "wrong answers", lambda t: ["compare", str(SYNTHETIC), str(synthetic(t, lambda d: d.update(lab="lab13")))], "lab13"),
    Case("config runs = true", "wrong answers", measure_with("runs = 15", "runs = true"), "measure.runs"),
    Case("config clock skew infinite", "wrong answers", measure_with("max_skew_s = 10", "max_skew_s = inf"), "max_skew_s"),
    Case("wasmtime cache path is a file", "wrong answers", lambda t: [M, "--runtime", "native", "-o", str(t / "o.json")], "not a directory",
         env={"LABREPORT_WASMTIME_CACHE": "/etc/hostname"}),
    Case("cache listing of a file", "wrong answers", lambda t: ["cache"], "not a directory", env={"LABREPORT_WASMTIME_CACHE": "/etc/hostname"}),
    Case("docker context from the environment unknown", "wrong answers", lambda t: ["doctor"], "nosuchcontext", env={"DOCKER_CONTEXT": "nosuchcontext"}),
    Case("measure with DOCKER_CONTEXT unknown", "wrong answers", lambda t: [M, "-o", str(t / "o.json")], "nosuchcontext", env={"DOCKER_CONTEXT": "nosuchcontext"}),
]  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file under folder (not following links), with its bytes; FIFOs are not read."""
    files: dict[str, bytes | None] = {}
    for path in sorted(folder.rglob("*")):
        mode = path.lstat().st_mode
        files[str(path.relative_to(folder))] = path.read_bytes() if stat.S_ISREG(mode) else None
    return files


SIGNALS = {"SIGTERM during a run": signal.SIGTERM, "Ctrl-C during a run": signal.SIGINT}


def test_the_catalogue_is_large_and_names_are_unique() -> None:
    names = [c.name for c in CASES] + list(SIGNALS)
    assert len(names) >= 40
    assert len(set(names)) == len(names)
    assert {c.area for c in CASES} >= {
        "config", "options", "environment", "file system", "measurement files", "templates", "engines",
        "output is input", "config paths", "output paths", "sandbox", "tracebacks", "wrong answers",
    }  # fmt: skip


def program_processes(marker: str) -> list[int]:
    """Processes whose command line holds marker (the run's own work directory)."""
    return [pid for pid, argv in proc.command_lines() if marker.encode() in b"\0".join(argv)]


@pytest.mark.parametrize("name", list(SIGNALS))
def test_signal(name: str, tmp_path: Path) -> None:
    """A run whose program serves forever, interrupted while that program runs."""
    require("go")
    from .integration.common import hanging_config, labreport

    output = tmp_path / "out.json"
    process = labreport(
        "measure", "--config", str(hanging_config(tmp_path)), "--runtime", "native", "--runs", "3",
        "--warmup", "0", "--timeout", "600", "--no-memory", "--no-serving", "-o", str(output),
    )  # fmt: skip
    deadline = time.monotonic() + 600
    programs: list[int] = []
    while not programs:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run never started its program"
        time.sleep(0.05)
        programs = [p for p in program_processes("moscow-time") if _child_of(p, process.pid)]
    os.kill(process.pid, SIGNALS[name])
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    # Its first run never ended, so no sample exists: said so, and no partial file (one that
    # has samples is kept and named: tests/test_measure.py, tests/integration).
    assert lines[-2:] == [
        "error: interrupted",
        "hint: run the command again; nothing was measured yet",
    ]
    assert not output.exists() and not (tmp_path / "out.partial.json").exists()
    assert not [p for p in programs if p in program_processes("moscow-time")]  # killed too


def _child_of(pid: int, parent: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return int(fields[1]) == parent


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(case: Case, tmp_path: Path) -> None:
    for component in case.needs:
        require(component)
    work = tmp_path / "work"
    work.mkdir()
    argv = case.make(work)
    before = snapshot(work)
    engine_before = None
    if case.area == "engines":
        from .integration.common import engine_holds

        engine_before = engine_holds()
    env = {"LABREPORT_STATE_DIR": str(tmp_path / "state"), **case.env}
    done = run(*argv, env=env)
    assert done.returncode == case.code, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) >= 2, done.stderr
    assert lines[-2].startswith("error: ") and lines[-1].startswith("hint: "), done.stderr
    assert len(lines[-1]) > len("hint: ")
    assert case.error in lines[-2], lines[-2]
    # Nothing written, nothing half-written, nothing the user had changed or removed.
    assert snapshot(work) == before
    if engine_before is not None:
        assert engine_holds() == engine_before


# -- handled, not refused: what a write does with what is already at its path ------------------
# Decided and documented (README, "Files labreport writes"): a symlink is followed and stays a
# symlink; an existing file keeps its mode; a long but legal name works; a second report in a
# folder has charts of its own; and a report is replaced all or nothing.


def test_doctor_strict_fails_without_the_docker_cli(tmp_path: Path) -> None:
    from .test_cli import run as run_cli

    done = run_cli("doctor", "--strict", env=no_docker_cli_path(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    error, hint = done.stderr.strip().splitlines()[-2:]
    assert error.startswith("error: missing: ") and "docker-cli" in error
    assert hint.startswith("hint: ")


def test_a_report_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path: Path) -> None:
    target = written(tmp_path, "real.md", "old")
    target.chmod(0o600)
    link = tmp_path / "report.md"
    link.symlink_to(target)
    done = run("render", str(SYNTHETIC), "-o", str(link))
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and link.resolve() == target
    assert target.read_text().startswith("# ")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # the mode it had
    # Its charts beside the file the link names, named after it: that file's links hold.
    assert (tmp_path / "real").is_dir()
    assert not (tmp_path / "report").exists()


def test_a_long_but_legal_name_is_written(tmp_path: Path) -> None:
    output = tmp_path / ("r" * 250 + ".md")
    done = run("render", str(SYNTHETIC), "-o", str(output))
    assert done.returncode == 0, done.stderr
    assert output.is_file()
    assert not [p for p in output.parent.rglob("*.tmp")]


def test_a_second_report_in_the_folder_leaves_the_first_one_current(tmp_path: Path) -> None:
    """The README's two-engine example: a second report beside report.md."""
    first, second = tmp_path / "report.md", tmp_path / "other.md"
    assert run("render", str(SYNTHETIC), "-o", str(first)).returncode == 0
    before = snapshot(tmp_path)
    data = synthetic(
        tmp_path, lambda d: d["samples"][0].update(wall_ns=d["samples"][0]["wall_ns"] + 1)
    )
    assert run("render", str(data), "-o", str(second)).returncode == 0
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing of the first changed
    assert (tmp_path / "other").is_dir()
    assert run("render", str(SYNTHETIC), "--check", "-o", str(first)).returncode == 0


def test_a_partial_file_is_compared_and_rendered_as_partial(tmp_path: Path) -> None:
    def interrupted(data: dict[str, object]) -> None:
        data.update(partial=True, partial_reason="interrupted (Ctrl-C or SIGTERM)")
        samples = data["samples"]
        assert isinstance(samples, list)
        data["samples"] = [s for s in samples if s["runtime"] != "docker-cli"]

    partial = synthetic(tmp_path, interrupted)
    done = run("compare", str(SYNTHETIC), str(partial), "--format", "md")
    assert done.returncode == 0, done.stderr
    assert "NEW: " in done.stdout and "PARTIAL (interrupted (Ctrl-C or SIGTERM))" in done.stdout
    rendered = run("render", str(partial), "-o", str(tmp_path / "report.md"))
    assert rendered.returncode == 0, rendered.stderr
    text = (tmp_path / "report.md").read_text()
    assert "**docker-cli**: not run: the measurement stopped first" in text
    assert "**docker-cli**: every run failed its check" not in text


def test_docker_context_in_the_environment_names_the_engine(tmp_path: Path) -> None:
    """The docker CLI honours DOCKER_CONTEXT; so does labreport (doctor, build, measure). The
    context lives in a docker config folder of the test's own (DOCKER_CONFIG)."""
    require("docker-cli")
    env = {"DOCKER_CONFIG": str(tmp_path / "docker-config"), "DOCKER_CONTEXT": "labreport-test"}
    subprocess.run(
        ["docker", "context", "create", "labreport-test", "--docker",
         "host=unix:///var/run/docker.sock"],
        env={**os.environ, **env}, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    done = run("doctor", "--json", env=env)
    assert done.returncode == 0, done.stderr
    found = {c["name"]: c for c in json.loads(done.stdout)}
    assert found["docker-engine"]["found"], found["docker-engine"]
    assert found["docker-engine"]["detail"].startswith("the DOCKER_CONTEXT engine: ")
