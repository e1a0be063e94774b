"""A third lab made in a temporary folder from config and templates only: a different program
(a C program that prints plain text), different check rules, its own template. `init`
starts it, and the real CLI measures it (native and docker-cli) and renders its report."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from labreport.record.files import load_measurement

from ..conftest import must_have_everything
from .common import NOTHING, engine_gained, engine_holds, labreport

pytestmark = pytest.mark.docker

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    const char *mode = getenv("MODE");
    if (mode == NULL || strcmp(mode, "once") != 0) { fputs("only MODE=once\n", stderr); return 1; }
    printf("answer: %d", 6 * 7);
    for (int i = 1; i < argc; i++) printf(" [%s]", argv[i]);
    printf("\n");
    return 0;
}
"""

DOCKERFILE = 'FROM scratch\nCOPY answer /answer\nENTRYPOINT ["/answer"]\n'

BUILDS_AND_CHECKS = """
[builds.native]
description = "static binary (clang)"
toolchain = "command"
command = ["clang", "-O2", "-static", "-s", "-o", "{output}", "answer.c"]
output = "answer"

[builds.wasm]
description = "WASI module (clang)"
toolchain = "command"
command = ["clang", "--target=wasm32-wasi", "-O2", "-s", "-o", "{output}", "answer.c"]
output = "answer.wasm"

[image]
dockerfile = "Dockerfile"
builder = "none"
context_builds = ["native"]
repository = "labreport/answer"
binary_path = "/answer"
build = "native"

[wasm_image]
build = "wasm"
reference = "labreport/answer-wasm"
module_path = "/answer.wasm"

[wagi]
env = { REQUEST_METHOD = "GET" }
expect_status = 200
expect_content_type = "text/plain"

[once]
env = { MODE = "once" }

[[check.rules]]
rule = "regex"
pattern = "answer: [0-9]+"

[[check.rules]]
rule = "text"
text = "answer: 42"
"""

TEMPLATE = """# {{ ctx.title }}
{% for r in ctx.measured() %}
- {{ r.name }}: {{ r.startup.count }} checked runs, median {{ r.startup.median | ms }}
{% endfor %}
Binary: {{ ctx.artifact("native").size_bytes | bytes }};
module: {{ ctx.artifact("wasm").size_bytes | bytes }}.
"""


def _run(*args: str, timeout_s: float = 600) -> str:
    process = labreport(*args)
    stdout, stderr = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, stderr
    return stdout


def _third_lab(tmp_path: Path) -> Path:
    """init from the C lab, then everything that makes it another lab rewritten."""
    _run("init", str(tmp_path / "answer"), "--from", "c-primes")
    lab = tmp_path / "answer"
    text = (lab / "lab.toml").read_text()
    assert 'name = "answer"' in text  # init renamed it
    head = text[: text.index("[builds.native]")]
    head = head.replace(
        'sources = ["primes.c", "Dockerfile"]', 'sources = ["answer.c", "Dockerfile"]'
    )
    tail = text[text.index("[server]") :]
    (lab / "lab.toml").write_text(head + BUILDS_AND_CHECKS + "\n" + tail)
    for old in (lab / "app").iterdir():
        old.unlink()
    (lab / "app" / "answer.c").write_text(PROGRAM)
    (lab / "app" / "Dockerfile").write_text(DOCKERFILE)
    shutil.rmtree(lab / "templates")
    (lab / "templates").mkdir()
    (lab / "templates" / "report.md.j2").write_text(TEMPLATE)
    return lab


def needs_clang() -> None:
    """clang with wasi-libc builds the lab; setup installs it, so CI fails without it."""
    if shutil.which("clang") is None:
        if must_have_everything():
            pytest.fail("clang missing; CI expects scripts/setup to have provided it")
        pytest.skip("clang missing (scripts/setup installs it)")


def test_a_third_lab_from_config_and_templates_only(
    tmp_path: Path, needs: Callable[[str], None]
) -> None:
    needs("docker-engine")
    needs_clang()
    before = engine_holds()
    lab = _third_lab(tmp_path)
    _run(
        "measure", "--lab", str(lab), "--runtime", "native,docker-cli",
        "--runs", "3", "--warmup", "1", "--no-memory", "--no-serving", "--engine", "host",
    )  # fmt: skip
    measurement = load_measurement(lab / "measurements" / "answer.json")
    assert measurement.lab == "answer"
    for runtime in ("native", "docker-cli"):
        counted = [s for s in measurement.samples if s.runtime == runtime and not s.warmup]
        assert len(counted) == 3 and all(s.ok for s in counted), runtime
    artifacts = {a.name: a for a in measurement.artifacts}
    assert artifacts["native"].build_command.startswith("clang -O2 -static")
    assert artifacts["image:/answer"].sha256 == artifacts["native"].sha256
    assert "clang" in measurement.environment.tool_versions
    _run("render", "--lab", str(lab))
    report = (lab / "report.md").read_text()
    assert re.search(r"- native: 3 checked runs, median [0-9.]+ ms", report), report
    assert re.search(r"- docker-cli: 3 checked runs, median [0-9.]+ ms", report), report
    _run("render", "--lab", str(lab), "--check")
    assert engine_gained(before) == NOTHING


def test_a_rule_that_does_not_hold_fails_every_run_and_says_which(
    tmp_path: Path, needs: Callable[[str], None]
) -> None:
    """The same lab expecting another answer: no run counts, and each says which rule failed."""
    needs_clang()
    lab = _third_lab(tmp_path)
    config_file = lab / "lab.toml"
    config_file.write_text(
        config_file.read_text().replace('text = "answer: 42"', 'text = "answer: 43"')
    )
    _run(
        "measure",
        "--lab",
        str(lab),
        "--runtime",
        "native",
        "--runs",
        "2",
        "--warmup",
        "0",
        "--no-memory",
        "--no-serving",
    )
    measurement = load_measurement(lab / "measurements" / "answer.json")
    failures = {s.failure for s in measurement.samples}
    assert failures == {"check.rules[1] (text): 'answer: 42', expected 'answer: 43'"}


ONCE = '[once]\nenv = { MODE = "once" }\n'


def _sections_removed(text: str, *names: str) -> str:
    """lab.toml without the named tables (a header and its lines up to the next header)."""
    for name in names:
        text = re.sub(rf"^\[{name}\]\n(?:(?!\[)[^\n]*\n)*", "", text, flags=re.M)
    return text


def test_a_command_line_only_lab_is_measured_with_no_check_it_never_claimed(
    tmp_path: Path, needs: Callable[[str], None]
) -> None:
    """No [server], no [wagi]: a lab all the same. Memory and serving are asked for (the
    defaults), yet nothing is served and no WAGI or server check is recorded, let alone failed;
    the default report says the lab declares neither mode. Its CLI mode takes arguments, which
    every runtime passes to the program as they are (after the image's entrypoint)."""
    needs("docker-engine")
    needs("containerd")
    needs("containerd-shim-wasmtime-aot-v1")
    needs_clang()
    before = engine_holds()
    lab = _third_lab(tmp_path)
    config_file = lab / "lab.toml"
    text = _sections_removed(config_file.read_text(), "server", "wagi")
    text = text.replace(ONCE, ONCE + 'args = ["--as", "two words"]\n')
    pattern = 'pattern = "answer: [0-9]+"'
    assert pattern in text
    text = text.replace(pattern, "pattern = 'answer: [0-9]+( \\[[^]]+\\])*'")
    config_file.write_text(
        text.replace('text = "answer: 42"', 'text = "answer: 42 [--as] [two words]"')
    )
    assert "[server]" not in config_file.read_text() and "[wagi]" not in config_file.read_text()
    shutil.rmtree(lab / "templates")  # the default report
    runtimes = ("native", "docker-cli", "docker-api", "ctr-runc", "wasmtime-embedded",
                "ctr-wasmtime-aot")  # fmt: skip
    _run(
        "measure", "--lab", str(lab), "--runtime", ",".join(runtimes),
        "--runs", "2", "--warmup", "1", "--engine", "host",
    )  # fmt: skip
    measurement = load_measurement(lab / "measurements" / "answer.json")
    assert measurement.modes == ["cli"] and measurement.cli_args == ["--as", "two words"]
    assert all(s.ok for s in measurement.samples), [s.failure for s in measurement.samples]
    assert measurement.checks == [] and measurement.serving == []
    assert {m.mode for m in measurement.memory} == {"once"}
    assert not [m for m in measurement.memory if m.failure]
    assert {o.runtime for o in measurement.outputs} == set(runtimes)
    assert {o.text for o in measurement.outputs} == {"answer: 42 [--as] [two words]\n"}
    _run("render", "--lab", str(lab))
    report = (lab / "report.md").read_text()
    assert "The lab declares no WAGI mode" in report
    assert "The lab declares no serving mode" in report
    assert "answer: 42" in report  # what the runs printed
    assert engine_gained(before) == NOTHING
