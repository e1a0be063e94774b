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

import fcntl
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
from typing import IO, Any

import pytest

from labreport.host import proc
from labreport.record.files import load_measurement

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
    check: Callable[[Path], None] | None = None  # code 0: handled, not refused; what must hold


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
    path.mkdir(parents=True)
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
    Case("init over a lab", "init", lambda t: ["init", str(folder(t / "x" / "app").parent), "--from", "c-primes"], "already exists"),
    Case("init bad name", "init", lambda t: ["init", str(t / "x"), "--name", "../x"], "not a lab name"),
    Case("init of a folder whose name is no lab name", "init", lambda t: ["init", str(t / "my lab")], "is not a lab name"),
    Case("render in a folder with no lab", "init", lambda t: ["render", "--lab", str(folder(t / "empty"))], "no lab in"),
    Case("measure in a folder with no lab", "init", lambda t: [M, "--lab", str(folder(t / "empty"))], "lab.toml not found"),
    Case("init from nothing", "init", lambda t: ["init", str(t / "x"), "--from", str(t / "none")], "neither a built-in lab nor a folder"),
    Case("init under a missing folder", "init", lambda t: ["init", str(t / "a" / "b")], "no such folder"),
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


# -- issue 39: anyone's files are safe to render ------------------------------------------------
# Each case below fails on main before it (b8bc387): a template that reached a model's own
# methods or grew a string past memory, a link planted in a lab that led a read or a write out of
# it, a file coerced or read whole, a traceback, a wrong answer with exit 0. "outside" is a folder
# beside the case's work folder: nothing in it may change.


def outside(work: Path) -> Path:
    """A folder outside the lab (the user's own files), with a file a link can point at."""
    folder = work.parent / "outside"
    folder.mkdir(exist_ok=True)
    (folder / "victim.md").write_text("the user's own file\n")
    (folder / "secret.j2").write_text("SECRET FROM OUTSIDE\n")
    (folder / "m.json").write_text(SYNTHETIC.read_text())
    (folder / "dir").mkdir(exist_ok=True)
    return folder


def render_lab(
    plant: Callable[[Path, Path], object], body: str = ""
) -> Callable[[Path], list[str]]:
    """`render --lab lab`: a lab with lab.toml, a measurement and its own templates, after
    plant(lab, outside) put a link (or something else) in it."""

    def make(work: Path) -> list[str]:
        default = '{% include "partials/extra.md.j2" ignore missing %}{{ ctx.chart("startup") }}\n'
        lab = lab_with_template(work, body or default)
        shutil.copy(ROOT / "lab.toml", lab / "lab.toml")
        plant(lab, outside(work))
        return ["render", "--lab", str(lab)]

    return make


def link(path: Path, target: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(target)


def loop_at(path: Path) -> Path:
    path.symlink_to(path)
    return path


def sparse(work: Path) -> Path:
    path = work / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(1 << 30)  # 1 GiB of holes: no disk used, twice the limit
    return path


def changed(data_change: Callable[[dict[str, Any]], object]) -> Callable[[Path], Path]:
    return lambda t: synthetic(t, data_change)


def runtime_named(name: str) -> Callable[[dict[str, Any]], None]:
    def rename(data: dict[str, Any]) -> None:
        old = data["runtimes"][0]["name"]
        data["runtimes"][0]["name"] = name
        for sample in data["samples"]:
            if sample["runtime"] == old:
                sample["runtime"] = name

    return rename


def every_native_run_failed(t: Path) -> list[str]:
    def failed(data: dict[str, Any]) -> None:
        for sample in data["samples"]:
            if sample["runtime"] == "native":
                sample.update(ok=False, failure="the output did not match")

    return ["compare", str(SYNTHETIC), str(synthetic(t, failed)), "--fail-above", "1.1"]


def shared_chart_folder(t: Path) -> list[str]:
    assert run("render", str(SYNTHETIC), "-o", str(t / "a.md")).returncode == 0
    return ["render", str(SYNTHETIC), "-o", str(t / "a.txt")]


def measure_while_another_runs(t: Path) -> list[str]:
    """The state directory's measure lock held, as a running measure holds it."""
    (t.parent / "state").mkdir(exist_ok=True)
    handle = (t.parent / "state" / "measure.lock").open("ab")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    HELD.append(handle)
    return [M, "--config", str(lab_copy(t / "lab")), "--runtime", "native", "--runs", "1",
            "--warmup", "0", "--no-memory", "--no-serving", "-o", str(t / "o.json")]  # fmt: skip


HELD: list[IO[bytes]] = []  # locks a case holds while its command runs (released after)


def new_lab_from(change: Callable[[Path, Path], object]) -> Callable[[Path], list[str]]:
    def make(t: Path) -> list[str]:
        source = t / "src"
        lab_copy(source)
        change(source, outside(t))
        return ["init", str(t / "copy"), "--from", str(source)]

    return make


def quoted_name(source: Path, _: Path) -> None:
    """Valid TOML that spells the keys init rewrites otherwise: quoted keys, literal strings."""
    text = (source / "lab.toml").read_text().replace('name = "lab12"', "'name' = 'lab12'")
    text = text.replace(
        'repository = "labreport/moscow-time"', '"repository"="labreport/moscow-time"'
    )
    text = text.replace(
        'reference = "labreport/moscow-time-wasm"', "reference = 'labreport/moscow-time-wasm'"
    )
    (source / "lab.toml").write_text(text)


def renamed_everywhere(work: Path) -> None:
    text = (work / "copy" / "lab.toml").read_text()
    assert "lab12" not in text.replace("labreport/", ""), text
    assert '"copy"' in text and '"labreport/copy"' in text and '"labreport/copy-wasm"' in text


def user_chart_kept(work: Path) -> None:
    assert (work / "report" / "startup-aaaaaaaaaaaa.svg").read_text() == "mine"


def a_users_chart(t: Path) -> list[str]:
    (t / "report").mkdir()
    (t / "report" / "startup-aaaaaaaaaaaa.svg").write_text("mine")
    (t / "report.md").write_text("# my notes\n![mine](report/startup-aaaaaaaaaaaa.svg)\n")
    return ["render", str(SYNTHETIC), "-o", str(t / "report.md")]


def encoded_links(work: Path) -> None:
    text = (work / "my report.md").read_text()
    assert "](my%20report/startup-" in text and "](my report/" not in text


def odd_names(work: Path) -> None:
    report = next(p for p in work.iterdir() if p.suffix == ".md")
    assert "\ufffd" in report.read_text(encoding="utf-8")


def not_utf8(work: Path, name: bytes) -> Path:
    path = Path(os.fsdecode(bytes(work) + b"/" + name))
    path.write_text(SYNTHETIC.read_text())
    return path


def template_bytes(t: Path) -> list[str]:
    """A partial whose bytes are not UTF-8 (a name in Latin-1, say), included by the report."""
    folder = t / "templates"
    (folder / "partials").mkdir(parents=True)
    (folder / "report.md.j2").write_text('{% include "partials/x.md.j2" %}\n')
    (folder / "partials" / "x.md.j2").write_bytes(b"Gr\xfc\xdfe\n")
    return ["render", str(SYNTHETIC), "--templates", str(folder), "-o", str(t / "r.md")]


def nul_env(t: Path) -> list[str]:
    config = lab_copy(t, 'env = { CGO_ENABLED = "0" }', 'env = { CGO_ENABLED = "0\\u0000" }')
    return [M, "--config", str(config), "--runtime", "native", "-o", str(t / "o.json")]


BIG = "{% set ns = namespace(s='x' * 1000000) %}{% for i in range(40) %}{% set ns.s = ns.s "
CASES += [
    # -- templates see plain values: the listed calls and nothing else --
    Case("template calls a record's parse_file", "template calls", templates_with('{{ ctx.sources[0].measurement.parse_file("/etc/hostname") }}'), "not allowed in a template"),
    Case("template calls a record's model_validate_json", "template calls", templates_with("{{ ctx.sources[0].measurement.model_validate_json('{}') }}"), "not allowed in a template"),
    Case("template reads a record's model_fields", "template calls", templates_with("{{ ctx.sources[0].measurement.model_fields }}"), "not allowed in a template"),
    Case("template copies a record", "template calls", templates_with("{{ ctx.memory[0].model_copy() }}"), "not allowed in a template"),
    Case("template dumps a record", "template calls", templates_with("{{ ctx.sources[0].measurement.model_dump_json() }}"), "not allowed in a template"),
    Case("template calls an unlisted dict method", "template calls", templates_with("{{ ctx.environment.tool_versions.copy() }}"), "not allowed in a template"),
    Case("template pads a string with center()", "template calls", templates_with("{{ 'x'.center(10) }}"), "not allowed in a template"),
    Case("template calls lipsum", "template calls", templates_with("{{ lipsum(100000) }}"), "'lipsum' is undefined"),
    # -- every string-making operation bounded before it allocates --
    Case("template printf width huge", "template memory", templates_with('{{ "%999999999d" % 1 }}'), "beyond the limit"),
    Case("template format filter width huge", "template memory", templates_with('{{ "%999999999s" | format("x") }}'), "beyond the limit"),
    Case("template str.format padding huge", "template memory", templates_with('{{ "{:>999999999}".format(1) }}'), "beyond the limit"),
    Case("template center filter huge", "template memory", templates_with('{{ "x" | center(999999999) }}'), "beyond the limit"),
    Case("template indent filter huge", "template memory", templates_with('{{ "a\\nb" | indent(999999999) }}'), "beyond the limit"),
    Case("template doubles a string with ~", "template memory", templates_with(BIG + "~ ns.s %}{% endfor %}"), "beyond the limit"),
    Case("template doubles a string with +", "template memory", templates_with(BIG + "+ ns.s %}{% endfor %}"), "beyond the limit"),
    Case("template replace grows a string", "template memory", templates_with('{{ ("a" * 100000).replace("a", "x" * 10000) }}'), "beyond the limit"),
    Case("template join grows a string", "template memory", templates_with('{{ (["x" * 10000000] * 100) | join }}'), "beyond the limit"),
    Case("template squares a huge integer", "template memory", templates_with("{% set ns = namespace(x=10 ** 20000) %}{{ ns.x * ns.x * ns.x > 0 }}"), "beyond the limit"),
    # -- links planted in a lab folder lead nothing out of it --
    Case("lab's report.md is a link out of the lab", "planted links", render_lab(lambda lab, out: link(lab / "report.md", out / "victim.md")), "outside"),
    Case("lab's chart folder is a link out of the lab", "planted links", render_lab(lambda lab, out: link(lab / "report", out / "dir")), "outside"),
    Case("lab's measurement is a link out of the lab", "planted links", render_lab(lambda lab, out: link(lab / "measurements" / "m.json", out / "m.json")), "outside"),
    Case("lab's partial template is a link out of the lab", "planted links", render_lab(lambda lab, out: link(lab / "templates" / "partials" / "extra.md.j2", out / "secret.j2")), "outside"),
    Case("lab's templates folder is a link out of the lab", "planted links", render_lab(lambda lab, out: (shutil.rmtree(lab / "templates"), link(lab / "templates", out))), "outside"),
    Case("lab's measurements folder is a link out of the lab", "planted links", lambda t: [M, "--config", str(lab_copy(t / "lab")), "--runtime", "native"] if link(t / "lab" / "measurements", outside(t) / "dir") is None else [], "outside"),
    Case("init copies a link out of the lab", "planted links", new_lab_from(lambda src, out: link(src / "app" / "extra", out / "dir")), "outside"),
    Case("report is a symlink loop", "planted links", lambda t: ["render", str(SYNTHETIC), "-o", str(loop_at(t / "r.md"))], "loop"),
    Case("chart folder is a symlink loop", "planted links", lambda t: ["render", str(SYNTHETIC), "-o", str(t / "r.md")] if loop_at(t / "r") else [], "loop"),
    # -- a chart folder belongs to one report --
    Case("two reports of one stem share a chart folder", "charts", shared_chart_folder, "holds the charts of a.md"),
    Case("a user's own chart-like file stays", "charts", a_users_chart, "", code=0, check=user_chart_kept),
    Case("a report name with a space links its charts", "charts", lambda t: ["render", str(SYNTHETIC), "-o", str(t / "my report.md")], "", code=0, check=encoded_links),
    # -- measurement files parsed strictly, names checked where they enter --
    Case("file round is true", "strict files", render_of(changed(lambda d: d["samples"][0].update(round=True))), "samples.0.round"),
    Case("file runs is a string", "strict files", render_of(changed(lambda d: d.update(runs="15"))), "runs"),
    Case("file date impossible", "strict files", render_of(changed(lambda d: d.update(started_at="2026-02-30T10:00:00+00:00"))), "started_at"),
    Case("file date without offset", "strict files", render_of(changed(lambda d: d.update(finished_at="yesterday"))), "finished_at"),
    Case("file runtime name with HTML", "strict files", render_of(changed(runtime_named("<img src=x onerror=alert(1)>"))), "runtimes.0.name"),
    Case("file runtime name with a newline", "strict files", render_of(changed(runtime_named("native\n| injected |"))), "runtimes.0.name"),
    Case("file host name with a newline", "strict files", render_of(changed(lambda d: d["environment"].update(host="vm\n# injected"))), "environment.host"),
    Case("file engine version with markup", "strict files", render_of(changed(lambda d: d["environment"]["engine"].update(engine_version="26 <script>x</script>"))), "engine_version"),
    Case("file of a gigabyte", "strict files", render_of(sparse), "more than a measurement file holds"),
    Case("a lab's report of another lab's file", "strict files", render_lab(lambda lab, out: synthetic(lab / "measurements", lambda d: d.update(lab="lab13"))), "lab13"),
    # -- compare answers right or fails --
    Case("compare gate when every NEW run failed", "compare", every_native_run_failed, "no valid run in NEW: native", code=1),
    Case("compare --fail-above inf", "compare", lambda t: ["compare", str(SYNTHETIC), str(written(t, "b.json", SYNTHETIC.read_text())), "--fail-above", "inf"], "finite"),
    Case("compare a file with itself", "compare", lambda t: ["compare", str(SYNTHETIC), str(SYNTHETIC)], "same file"),
    # -- init reads lab.toml as TOML --
    Case("init of an app folder holding a FIFO", "init", new_lab_from(lambda src, out: os.mkfifo(src / "app" / "pipe")), "cannot copy"),
    Case("init with the name in quoted keys", "init", new_lab_from(quoted_name), "", code=0, check=renamed_everywhere),
    # -- tracebacks that are one error now --
    Case("DOCKER_HOST bad IPv6 literal", "engine URLs", lambda t: ["build"], "not an engine URL", env={"DOCKER_HOST": "tcp://[::1"}),
    Case("DOCKER_HOST port beyond 65535", "engine URLs", lambda t: ["build"], "not an engine URL", env={"DOCKER_HOST": "tcp://127.0.0.1:99999"}),
    Case("--docker-host bad IPv6 literal", "engine URLs", lambda t: [M, "--docker-host", "tcp://[::1", "-o", str(t / "o.json")], "not an engine URL"),
    Case("partial template not UTF-8", "tracebacks", template_bytes, "partials/x.md.j2: not UTF-8"),
    Case("config env value with a NUL byte", "tracebacks", nul_env, "builds.native.env"),
    Case("measurement file name not UTF-8", "tracebacks", lambda t: ["render", str(not_utf8(t, b"m\xff.json")), "-o", str(t / "r.md")], "", code=0, check=odd_names),
    Case("report name not UTF-8", "tracebacks", lambda t: ["render", str(SYNTHETIC), "-o", os.fsdecode(bytes(t) + b"/r\xff.md")], "", code=0),
    Case("compare on an ASCII-only stdout", "tracebacks", lambda t: ["compare", str(SYNTHETIC), str(written(t, "b.json", SYNTHETIC.read_text()))], "", code=0, env={"PYTHONIOENCODING": "ascii"}),
    # -- one measure at a time --
    Case("measure while another measure runs", "measure lock", measure_while_another_runs, "another labreport measure is running"),
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
        "template calls", "template memory", "planted links", "charts", "strict files", "compare",
        "init", "engine URLs", "measure lock",
    }  # fmt: skip


def _children(parent: int, program: bytes) -> list[int]:
    """parent's children whose argv[0] ends with /program."""
    return [
        pid for pid, argv in proc.command_lines()
        if argv and argv[0].endswith(b"/" + program) and _child_of(pid, parent)
    ]  # fmt: skip


def _interrupt_when(process: subprocess.Popen[str], program: bytes) -> list[int]:
    """Waits until labreport runs program (as its child); the program's pids."""
    deadline = time.monotonic() + 600
    found: list[int] = []
    while not found:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"the run never started {program!r}"
        time.sleep(0.05)
        found = _children(process.pid, program)
    return found


def _assert_interrupted(process: subprocess.Popen[str], tmp_path: Path, built: bool) -> None:
    """Exit 130 in one error; no sample exists (the first run never ended). What was built is
    measured (sizes), so once the build is done it is kept in the partial file, and named."""
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    partial = tmp_path / "out.partial.json"
    kept = f"what was measured is kept in {partial} (add --resume to continue it)"
    assert stderr.strip().splitlines()[-2:] == [
        "error: interrupted",
        f"hint: run the command again; {kept if built else 'nothing was measured yet'}",
    ]
    assert not (tmp_path / "out.json").exists()
    assert partial.exists() == built
    if built:
        result = load_measurement(partial)
        assert result.partial and not result.samples and result.artifacts


def _measure_native(config_file: Path, tmp_path: Path) -> subprocess.Popen[str]:
    from .integration.common import labreport

    return labreport(
        "measure", "--config", str(config_file), "--runtime", "native", "--runs", "3",
        "--warmup", "0", "--timeout", "600", "--no-memory", "--no-serving",
        "-o", str(tmp_path / "out.json"),
    )  # fmt: skip


@pytest.mark.parametrize("name", list(SIGNALS))
def test_signal(name: str, tmp_path: Path) -> None:
    """A run whose program serves forever, interrupted while that program runs."""
    require("go")
    from .integration.common import hanging_config

    process = _measure_native(hanging_config(tmp_path), tmp_path)
    programs = _interrupt_when(process, b"moscow-time")
    os.kill(process.pid, SIGNALS[name])
    _assert_interrupted(process, tmp_path, built=True)
    assert not [p for p in programs if Path(f"/proc/{p}").exists()]  # killed and reaped


def test_sigterm_during_the_build_kills_it_and_leaves_no_go_work_folder(tmp_path: Path) -> None:
    """`go build` cut off (here with -a, so that it compiles for seconds): it and its compilers
    are gone when labreport exits, and its work folder with them (Go's own is in /tmp, and a
    killed go leaves it: labreport gives the build a scratch folder of its own)."""
    require("go")
    from .integration.common import hanging_config

    config_file = hanging_config(tmp_path)
    text = config_file.read_text()
    fast = 'args = ["-buildvcs=false", "-tags"'
    assert fast in text
    config_file.write_text(text.replace(fast, 'args = ["-a", "-buildvcs=false", "-tags"', 1))
    before = set(Path("/tmp").glob("go-build*"))
    process = _measure_native(config_file, tmp_path)
    (build,) = _interrupt_when(process, b"go")
    time.sleep(1.5)  # until it compiles, in its work folder
    compilers = [
        pid for pid, argv in proc.command_lines()
        if argv and pid != build and _group_of(pid) == build
    ]  # fmt: skip
    assert compilers, "the build was not compiling yet"
    os.kill(process.pid, signal.SIGTERM)
    _assert_interrupted(process, tmp_path, built=False)
    assert not [p for p in [build, *compilers] if Path(f"/proc/{p}").exists()]
    assert set(Path("/tmp").glob("go-build*")) == before


def test_ctrl_c_while_python_loads_labreport_is_an_interrupt_not_a_traceback() -> None:
    """Ctrl-C at any moment of the first fraction of a second: exit 130 with one error line
    (or the command was done first), never a traceback from an import."""
    import sys

    for delay in (0.02, 0.05, 0.08, 0.12, 0.16, 0.2, 0.25, 0.3):
        child = subprocess.Popen(
            [sys.executable, "-m", "labreport", "doctor"], cwd=ROOT, text=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=60)
        assert "Traceback" not in stderr, (delay, stderr)
        assert child.returncode in (0, 130, -signal.SIGINT), (delay, child.returncode, stderr)
        if child.returncode < 0:  # before Python itself handled signals: no output at all
            assert not stderr, stderr
        if child.returncode == 130:
            assert stderr.strip().splitlines()[-2] == "error: interrupted", stderr


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command's name ([] when it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return []


def _child_of(pid: int, parent: int) -> bool:
    fields = _stat(pid)
    return bool(fields) and int(fields[1]) == parent


def _group_of(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[2]) if fields else -1


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault(case: Case, tmp_path: Path) -> None:
    for component in case.needs:
        require(component)
    work = tmp_path / "work"
    work.mkdir()
    argv = case.make(work)
    before = snapshot(work)
    beside = snapshot(tmp_path / "outside") if (tmp_path / "outside").is_dir() else None
    engine_before = None
    if case.area == "engines":
        from .integration.common import NOTHING, engine_gained, engine_holds

        engine_before = engine_holds()
    env = {"LABREPORT_STATE_DIR": str(tmp_path / "state"), **case.env}
    try:
        done = run(*argv, env=env)
    finally:
        while HELD:
            HELD.pop().close()
    assert done.returncode == case.code, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    if beside is not None:  # nothing outside the lab read into a report, written or replaced
        assert snapshot(tmp_path / "outside") == beside
        assert "SECRET FROM OUTSIDE" not in "".join(
            p.read_text(errors="replace") for p in work.rglob("*.md") if p.is_file()
        )
    if case.code == 0:
        if case.check is not None:
            case.check(work)
        return
    lines = done.stderr.strip().splitlines()
    assert len(lines) >= 2, done.stderr
    assert lines[-2].startswith("error: ") and lines[-1].startswith("hint: "), done.stderr
    assert len(lines[-1]) > len("hint: ")
    assert case.error in lines[-2], lines[-2]
    # Nothing written, nothing half-written, nothing the user had changed or removed.
    assert snapshot(work) == before
    if engine_before is not None:
        assert engine_gained(engine_before) == NOTHING


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
