"""The README's trust line, second half: rendering and comparing never run code and never read
or write outside what they were given. Python's audit hooks watch every file opened and every
process started (tests/fuzz_targets.watched); the fuzzers (tests/test_fuzz.py) hold the same for
any template and any lab folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from labreport.commands import compare, render
from labreport.errors import LabreportError

from .fakes import SYNTHETIC
from .fuzz_targets import watched

# What a template from anyone may try: each is refused in one error, and nothing else happens.
ESCAPES = [
    "{{ ctx.sources[0].measurement.parse_file('/etc/hostname') }}",
    "{{ ctx.sources[0].measurement.parse_raw(\"cos\\nsystem\\n(S'id'\\ntR.\", proto=1) }}",
    "{{ ctx.memory[0].model_validate_json('{}') }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ ctx.__class__.__mro__ }}",
    "{{ ctx.environment.tool_versions.copy() }}",
    "{% include '/etc/passwd' %}",
    "{% include '../../../../etc/passwd' %}",
    "{{ ('{0.__class__.__init__.__globals__}').format(ctx) }}",
    "{{ self.__init__ }}",
]


@pytest.mark.parametrize("body", ESCAPES)
def test_a_template_reaches_nothing_but_its_figures(body: str, tmp_path: Path) -> None:
    (tmp_path / "t.md.j2").write_text(body + "\n")
    with watched(tmp_path, SYNTHETIC), pytest.raises(LabreportError) as raised:
        render.run(render.Options([SYNTHETIC], None, tmp_path / "r.md", tmp_path, "t.md.j2", False))
    assert raised.value.message.startswith("t.md.j2:") or "not found" in raised.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.md.j2"]  # nothing written


def test_a_students_file_with_a_courses_templates_reads_those_and_writes_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instructor's render, from a folder of its own (the current folder's lab.toml, where
    there is one, is read too: every command looks there)."""
    monkeypatch.chdir(tmp_path)
    student, course, out = tmp_path / "student", tmp_path / "course", tmp_path / "out"
    student.mkdir()
    out.mkdir()
    shutil.copy(SYNTHETIC, student / "m.json")
    shutil.copytree(Path(__file__).resolve().parent.parent / "templates", course)
    with watched(student / "m.json", course, out):
        chosen = render.Options(
            [student / "m.json"], None, out / "report.md", course, "report.md.j2", False
        )
        done = render.run(chosen)
    assert all(path.resolve().is_relative_to(out) for path in done.written)
    assert (out / "report.md").read_text().startswith("# ")


def test_compare_reads_the_two_files_and_nothing_else(tmp_path: Path) -> None:
    data = json.loads(SYNTHETIC.read_text())
    data["samples"][0]["wall_ns"] += 1
    (tmp_path / "new.json").write_text(json.dumps(data))
    with watched(SYNTHETIC, tmp_path / "new.json"):
        found = compare.run(SYNTHETIC, tmp_path / "new.json")
    assert found.rows
