"""Rendering: snapshot of the report for fixed data, reproducible charts, strict templates,
check mode, and one-line errors for bad measurement files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labreport.analysis.lab import LabView
from labreport.analysis.sources import load_sources
from labreport.cli import app
from labreport.errors import LabreportError
from labreport.report import charts, render

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SYNTHETIC = FIXTURES / "synthetic.json"
SNAPSHOT = FIXTURES / "synthetic-report.md"


def rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # A copy at a fixed relative name, so the report's source line does not depend on tmp_path.
    monkeypatch.chdir(tmp_path)
    Path("synthetic.json").write_bytes(SYNTHETIC.read_bytes())
    return render.render([Path("synthetic.json")]).text


def test_report_matches_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    markdown = rendered(tmp_path, monkeypatch)
    if os.environ.get("LABREPORT_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(markdown)
    assert markdown == SNAPSHOT.read_text(), "rerun with LABREPORT_UPDATE_SNAPSHOTS=1 and review"


def test_report_follows_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    markdown = rendered(tmp_path, monkeypatch)
    # The module is larger than the binary in the fixture: the report must say so.
    assert "### Why is the WASM binary larger than the native one?" in markdown
    assert "the traditional container started\nfaster" in markdown
    # The failed docker-cli sample is reported and not counted.
    assert "1 of 11 runs failed the output check" in markdown
    assert "| docker-cli | 10/11 |" in markdown
    # What was not measured says why.
    assert "**docker-api**: Docker daemon not reachable (synthetic)" in markdown
    # The fixture skipped TinyGo: the report says so with the reason, not the measured branch.
    assert (
        "TinyGo, which usually makes far smaller modules, was *not measured*: "
        "tinygo is not on PATH (synthetic)." in markdown
    )
    assert "TinyGo, which leaves out most of Go's runtime, made a" not in markdown


def test_larger_native_binary_turns_the_answer_round(tmp_path: Path) -> None:
    data = json.loads(SYNTHETIC.read_text())
    data["artifacts"][1]["size_bytes"] = 1_000_000  # the module is now the smaller one
    path = tmp_path / "small.json"
    path.write_text(json.dumps(data))
    markdown = render.render([path]).text
    assert "### Why is the WASM binary smaller than the native one?" in markdown
    assert "It is smaller: 1,000,000 B" in markdown


def test_charts_are_byte_for_byte_reproducible_and_referenced(tmp_path: Path) -> None:
    first = render.render([SYNTHETIC])
    second = render.render([SYNTHETIC])
    assert [c.svg for c in first.charts] == [c.svg for c in second.charts]
    assert {c.kind for c in first.charts} == {"startup", "sizes", "memory", "serving"}
    assert all(charts.CHART_NAME.match(c.name) for c in first.charts)  # named by content
    for chart in first.charts:
        assert f"![{chart.alt}](report/{chart.name})" in first.text
        assert "<dc:date>" not in chart.svg


def test_the_memory_chart_puts_a_bar_only_beside_bars_of_its_method() -> None:
    """One panel per mode and method, a CLI run's first: the CLI peaks of the task cgroup are
    one panel, WASM linear memory another, the server's RSS idle and under load a third."""
    view = LabView(load_sources([SYNTHETIC]))
    panels = {panel.title: panel.rows for panel in charts.memory_panels(view)}
    assert panels == {
        "one CLI run: cgroup peak": {
            "ctr-runc": {"peak": 2_500_000},
            "ctr-wasmtime": {"peak": 190_000_000},
        },
        "one CLI run: linear memory": {"wasmtime-embedded": {"at exit": 12_582_912}},
        "server: VmRSS": {"native": {"idle (median)": 5_900_000, "under load (max)": 7_000_000}},
    }
    chart = charts.memory(charts.memory_panels(view))
    assert chart.alt.startswith("Memory in MiB, one panel per method: one CLI run: cgroup peak:")
    assert chart.svg.count('id="axes_') == 3  # three panels


def test_write_then_check_passes_and_a_hand_edit_fails(tmp_path: Path) -> None:
    output = tmp_path / "report.md"
    report = render.render([SYNTHETIC])
    render.write(report, output)
    assert render.stale(report, output) == []
    output.write_text(output.read_text().replace("median", "medain", 1))
    problems = render.stale(report, output)
    assert len(problems) == 1 and "medain" in problems[0]
    sizes = next(c.name for c in report.charts if c.kind == "sizes")
    (tmp_path / "report" / sizes).unlink()
    assert any(f"{sizes}: missing" in p for p in render.stale(report, output))


def test_check_mode_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    output = tmp_path / "report.md"
    result = CliRunner().invoke(app, ["render", str(SYNTHETIC), "-o", str(output), "--check"])
    assert result.exit_code == 1
    assert not output.exists()


def test_user_templates_override_and_undefined_names_the_place(tmp_path: Path) -> None:
    (tmp_path / "report.md.j2").write_text("# {{ ctx.title }}\n{{ ctx.no_such_thing }}\n")
    with pytest.raises(LabreportError) as error:
        render.render([SYNTHETIC], templates=tmp_path)
    assert error.value.message.startswith("report.md.j2:2: ")
    assert "no_such_thing" in error.value.message


def test_example_summary_template_renders(tmp_path: Path) -> None:
    markdown = render.render([SYNTHETIC], template="summary.md.j2").text
    assert "Fastest to start: **native**" in markdown
    assert "| docker-api | not measured |" in markdown


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema_name": "other"}', "not a labreport measurement file"),
        ('{"schema_name": "labreport.measurement", "schema_version": 99}', "upgrade labreport"),
        ('{"schema_name": "labreport.measurement", "schema_version": 1}', "lab: Field required"),
    ],
)
def test_bad_files_give_one_line_and_write_nothing(
    tmp_path: Path, content: str, expected: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    output = tmp_path / "report.md"
    result = CliRunner().invoke(app, ["render", str(bad), "-o", str(output)])
    assert result.exit_code == 2
    assert str(bad) in result.output and expected in result.output
    assert "Traceback" not in result.output
    assert not output.exists()


def test_same_runtime_in_two_files_is_refused() -> None:
    with pytest.raises(LabreportError, match="also measured in"):
        render.render([SYNTHETIC, SYNTHETIC])


def test_a_template_that_never_ends_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render, "RENDER_TIMEOUT_S", 1)
    (tmp_path / "loop.md.j2").write_text(
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}\n"
    )
    with pytest.raises(LabreportError, match=r"loop\.md\.j2.*longer than 1 s"):
        render.render([SYNTHETIC], templates=tmp_path, template="loop.md.j2")


def test_the_sandbox_allows_the_listed_calls_and_no_other_method(tmp_path: Path) -> None:
    """A record's fields and the views' listed methods, yes; a model's own machinery (the
    parsing helpers that read files and unpickle) or any unlisted method, no."""
    (tmp_path / "ok.md.j2").write_text(
        "{{ ctx.measured()[0].name }} {{ 'a,b'.split(',') }} "
        "{{ ctx.sources[0].measurement.memory[0].idle_median_bytes() }}\n"
    )
    rendered = render.render([SYNTHETIC], templates=tmp_path, template="ok.md.j2")
    assert rendered.text.startswith("native ['a', 'b'] ")
    for call in (
        "ctx.sources[0].measurement.model_dump_json()",
        "ctx.sources[0].measurement.parse_file('/etc/hostname')",
        "ctx.sources[0].measurement.__class__.parse_raw('{}')",
        "ctx.sources[0].measurement.runtimes[0].copy()",
        "ctx.sources[0].measurement.model_fields",
        "ctx.memory[0].model_construct()",
        "ctx.environment.tool_versions.pop('x')",
        "'x'.center(5)",
    ):
        (tmp_path / "bad.md.j2").write_text(f"{{{{ {call} }}}}\n")
        with pytest.raises(LabreportError, match=r"bad.md.j2:1: not allowed in a template"):
            render.render([SYNTHETIC], templates=tmp_path, template="bad.md.j2")


def test_a_file_that_kept_no_outputs_says_so(tmp_path: Path) -> None:
    data = json.loads(SYNTHETIC.read_text())
    data.pop("outputs")
    data.pop("outputs_kept")
    (tmp_path / "old.json").write_text(json.dumps(data))
    markdown = render.render([tmp_path / "old.json"]).text
    assert "_Not kept: this file was measured by a labreport that did not keep outputs." in markdown
    assert "measured run 1" not in markdown


def test_the_first_screen_answers_and_marks_what_was_not_measured(tmp_path: Path) -> None:
    """The at-a-glance table comes before the provenance; a runtime the file lacks makes its
    rows *not measured* with the reason, never a figure."""
    data = json.loads(SYNTHETIC.read_text())
    full = render.render([SYNTHETIC]).text
    assert full.index("## At a glance") < full.index("## Task 1 — ")
    assert full.index("## Task 4 — ") < full.index("## Appendix A. Where it was measured")
    assert "| startup, cached WASM (ctr) | 112 ms | 193 ms | 1.72x | WASM **slower**" in full
    data["samples"] = [s for s in data["samples"] if s["runtime"] != "ctr-runc"]
    data["runtimes"] = [r for r in data["runtimes"] if r["name"] != "ctr-runc"]
    data["memory"] = [m for m in data["memory"] if m["runtime"] != "ctr-runc"]
    path = tmp_path / "no-runc.json"
    path.write_text(json.dumps(data))
    markdown = render.render([path]).text
    assert (
        "| startup, cached WASM (ctr) | *not measured* | *not measured* | - | ctr-runc or "
        "ctr-wasmtime-aot not measured" in markdown
    )
    assert "| memory, one CLI run | *not measured* |" in markdown


def test_the_report_follows_the_labs_tasks_and_a_lab_names_them(tmp_path: Path) -> None:
    """report.md.j2: the first screen, then Task 1 to 4 in order (each side with its builds,
    startup, memory and what a run printed), then the appendix; the headings are the lab's own
    (partials/tasks.j2, which a lab's templates override)."""
    markdown = render.render([SYNTHETIC], with_charts=False).text
    headings = [line for line in markdown.splitlines() if line.startswith("## ")]
    assert headings[:5] == [
        "## At a glance",
        "## Task 1 — Create the Moscow Time application",
        "## Task 2 — Build the traditional container (static Go binary, FROM scratch)",
        "## Task 3 — Build the WASM container (the same program compiled to WASI)",
        "## Task 4 — Performance comparison and analysis",
    ]
    assert headings[5].startswith("## Appendix A.")
    for task in ("## Task 2", "## Task 3"):
        section = markdown[markdown.index(task) :]
        section = section[: section.index("\n## ", 1)]
        for part in ("### How it was built", "### Startup of", "### Memory", "### Functionality"):
            assert part in section, (task, part)
    task2 = markdown[markdown.index("## Task 2") : markdown.index("## Task 3")]
    assert "| ctr-runc | 11/11 |" in task2 and "ctr-wasmtime" not in task2  # its side only
    assert "ctr-runc's measured run 2 printed" in task2  # a container's output before native's
    own = tmp_path / "templates" / "partials"
    own.mkdir(parents=True)
    (own / "tasks.j2").write_text(
        '{% set tasks = {"cli": "One", "traditional": "Two", "wasm": "Three", '
        '"comparison": "Four"} %}'
    )
    renamed = render.render([SYNTHETIC], templates=own.parent, with_charts=False).text
    assert "## Task 1 — One" in renamed and "## Task 4 — Four" in renamed


def test_the_report_by_metric_stays_a_template_of_its_own() -> None:
    markdown = render.render([SYNTHETIC], template="by_metric.md.j2", with_charts=False).text
    numbered = [
        line for line in markdown.splitlines() if line[:4] in {f"## {n}" for n in "12345678"}
    ]
    assert [line.split(".")[0] for line in numbered] == [f"## {n}" for n in range(1, 9)]
    assert numbered[3] == "## 4. Startup: the CLI mode (`MODE=once`), spawn to exit"
    assert "## Task 1" not in markdown


def test_the_cli_mode_is_named_with_its_environment_and_arguments(tmp_path: Path) -> None:
    data = json.loads(SYNTHETIC.read_text())
    data["cli_args"] = ["--limit", "10 000"]
    (tmp_path / "args.json").write_text(json.dumps(data))
    markdown = render.render([tmp_path / "args.json"], with_charts=False).text
    assert "### Startup of the CLI mode (`MODE=once`, arguments `--limit` `10 000`)" in markdown
