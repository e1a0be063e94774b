"""What the fuzzer feeds labreport, and what must hold; shared by tests/test_fuzz.py (a few
hundred examples in CI) and benchmarks/fuzz.py (ten thousand and more).

- `mutated_files`: the synthetic measurement file with one value replaced by any JSON, a key
  removed, its text cut short, or its samples repeated into a large file. Through the models
  and `render`, the only failure allowed is a LabreportError that blames the input; a template
  error on a file that passed validation is a bug in the shipped templates.
- `valid_measurements`: files the models accept, varied where real files vary (runtimes
  missing, failed runs, any timings, shim records, no images, no memory, unknown RAM, a
  partial run). The shipped templates must render every one of them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from labreport.errors import LabreportError
from labreport.record.models import Measurement
from labreport.report import render
from labreport.report.render import DEFAULT_TEMPLATES

from .fakes import SYNTHETIC

BASE: dict[str, Any] = json.loads(SYNTHETIC.read_text())


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:3]):  # the first few items of each list
            found += _paths(value, (*prefix, index))
    return found


PATHS = _paths(BASE)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for step in path[:-1]:
        data = data[step]
    return data


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    data = copy.deepcopy(BASE)
    kind = draw(st.sampled_from(["replace", "remove", "truncate", "huge", "garbage"]))
    if kind == "garbage":
        return draw(st.binary(max_size=200))
    if kind == "huge":
        data["samples"] = data["samples"] * draw(st.integers(min_value=2, max_value=60))
        return json.dumps(data).encode()
    path = draw(st.sampled_from(PATHS))
    parent = _parent(data, path)
    if kind == "remove":
        del parent[path[-1]]
    elif kind == "replace":
        parent[path[-1]] = draw(json_values)
    text = json.dumps(data, allow_nan=True).encode()
    if kind == "truncate":
        text = text[: draw(st.integers(min_value=0, max_value=len(text) - 1))]
    return text


@st.composite
def valid_measurements(draw: st.DrawFn) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    names = [r["name"] for r in data["runtimes"]]
    for record in data["runtimes"]:
        if draw(st.booleans()) and draw(st.booleans()):
            record.update(available=False, reason=draw(st.text(max_size=40)))
    gone = {r["name"] for r in data["runtimes"] if not r["available"]}
    samples = []
    for sample in data["samples"]:
        if sample["runtime"] in gone or draw(st.integers(0, 9)) == 0:
            continue
        sample["wall_ns"] = draw(st.integers(min_value=1, max_value=10**12))
        if draw(st.integers(0, 7)) == 0:
            sample.update(ok=False, failure=draw(st.text(max_size=40)))
        if sample.get("shim") and draw(st.integers(0, 4)) == 0:
            phases = draw(
                st.lists(
                    st.fixed_dictionaries(
                        {
                            "name": st.sampled_from(
                                ["shim_main", "run_wasi", "key", "load", "compile", "odd"]
                            ),
                            "ns": st.integers(min_value=0, max_value=10**11),
                        }
                    ),
                    max_size=6,
                )
            )
            cache = draw(st.sampled_from(["hit", "miss: x", "off: y", "", "what"]))
            sample["shim"] = {"shim": "wasmtime", "phases": phases, "facts": {"cache": cache}}
        samples.append(sample)
    data["samples"] = samples
    for key in ("images", "artifacts", "memory", "checks", "skipped_builds"):
        if draw(st.integers(0, 3)) == 0:
            data[key] = [] if isinstance(data[key], list) else {}
    if data["memory"] and draw(st.booleans()):
        data["memory"][0]["peak_bytes"] = draw(st.none() | st.integers(1, 2**40))
    if draw(st.booleans()):
        data["environment"]["memory_total_bytes"] = None
    data["runs"] = draw(st.integers(min_value=1, max_value=100))
    data["warmup"] = draw(st.integers(min_value=0, max_value=3))
    if draw(st.integers(0, 4)) == 0:
        data.update(partial=True, partial_reason=draw(st.text(max_size=40)))
    assert set(names)  # the fixture has runtimes
    Measurement.model_validate(data)  # the strategy makes valid files only
    return data


def _render(content: bytes, with_charts: bool) -> render.Report:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch, "m.json")
        path.write_bytes(content)
        return render.render([path], with_charts=with_charts)


def check_mutated(content: bytes, with_charts: bool = False) -> None:
    """Renders, or fails with a LabreportError that blames the file, never the template."""
    try:
        _render(content, with_charts)
    except LabreportError as error:
        assert not error.hint.startswith("fix the template"), (error.message, error.hint)


def check_valid(data: dict[str, Any], with_charts: bool = False) -> None:
    """A file the models accept renders with the shipped templates, without an error."""
    report = _render(json.dumps(data).encode(), with_charts)
    assert report.text.startswith("# ")


# -- what rendering may touch: no process, no file outside what it was given --------------------

PROCESS_EVENTS = ("subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.fork", "os.spawn")
_recording: list[list[tuple[str, Any]]] = []  # the watched() block's events, while it runs


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _recording and (event == "open" or event.startswith(PROCESS_EVENTS)):
        _recording[-1].append((event, args[0] if args else None))


sys.addaudithook(_audit)  # records only inside watched()


@contextlib.contextmanager
def watched(*given: Path) -> Iterator[None]:
    """The block starts no process and opens no file outside given (and Python's own files:
    its library, the venv's packages, labreport's default templates), by Python's audit hooks."""
    events: list[tuple[str, Any]] = []
    _recording.append(events)
    try:
        yield
    finally:
        _recording.remove(events)
    roots = [
        p.resolve() for p in (*given, Path(sys.prefix), Path(sys.base_prefix), DEFAULT_TEMPLATES)
    ]
    for event, target in events:
        assert event == "open", f"a process was started: {event} {target!r}"
        if isinstance(target, int):
            continue  # a descriptor already open (a folder fsynced)
        path = Path(os.fsdecode(target))
        with contextlib.suppress(OSError, RuntimeError):
            path = (path if path.is_absolute() else Path.cwd() / path).resolve()
        assert any(path.is_relative_to(root) for root in roots), f"opened {path}"


# -- fuzzed templates: any mix of what a template can write, the sandbox holds ------------------

REACH = [
    "ctx", "ctx.sources[0].measurement", "ctx.memory[0]", "ctx.environment", "ctx.runtimes",
    "ctx.sources[0]", "ctx.targets[0]", "ctx.measured()[0]", "'x'", "'%s'", "'{:>9}'", "[1, 2]",
    "{'a': 1}", "cycler(1, 2)", "joiner()", "namespace(a=1)", "range(3)", "loop", "self",
]  # fmt: skip
ATTRS = [
    "parse_file('/etc/hostname')", "parse_raw('{}')", "model_dump()", "model_dump_json()",
    "model_validate_json('{}')", "model_fields", "model_copy()", "__class__", "__init__",
    "__globals__", "mro()", "center(99999999)", "ljust(9)", "format(1)", "format_map({})",
    "replace('x', 'y' * 10000)", "join(['a'] * 10)", "upper()", "split()", "items()", "copy()",
    "pop('a')", "clear()", "idle_median_bytes()", "name", "host", "title", "chart('startup')",
    "compare('native', 'ctr-runc')", "runtime('native')", "next()", "__call__",
    "startswith('x')", "keys()", "get('a')", "_comparisons", "read()", "write_text('x')",
]  # fmt: skip
OPERATORS = ["*", "**", "~", "+", "%", "//", "-"]
OPERANDS = ["'x'", "'%999999999d'", "'%s%s'", "10", "10 ** 5", "99999999", "[1]", "(1, 2)", "1.5"]
FILTERS = [
    "center(99999999)", "indent(99999999)", "format(1)", "join", "replace('a', 'b' * 999)",
    "batch(99999999, 0)", "slice(99999999)", "tojson(99)", "wordwrap(5, wrapstring='x' * 999)",
    "sum", "list", "length", "string", "attr('parse_file')", "attr('format')", "ms", "mib",
    "e", "first", "unique", "sort", "reverse", "int", "float", "pprint", "xmlattr",
]  # fmt: skip


@st.composite
def fuzzed_templates(draw: st.DrawFn) -> str:
    """A template body: expressions reaching for methods, operators with huge operands, filters
    with huge arguments, a loop that grows a string. Each piece is one line."""
    pieces = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["reach", "op", "filter", "grow", "include"]))
        if kind == "reach":
            pieces.append(
                f"{{{{ {draw(st.sampled_from(REACH))}.{draw(st.sampled_from(ATTRS))} }}}}"
            )
        elif kind == "op":
            left, right = draw(st.sampled_from(OPERANDS)), draw(st.sampled_from(OPERANDS))
            pieces.append(f"{{{{ {left} {draw(st.sampled_from(OPERATORS))} {right} }}}}")
        elif kind == "filter":
            value = draw(st.sampled_from([*OPERANDS, *REACH[:8]]))
            pieces.append(f"{{{{ {value} | {draw(st.sampled_from(FILTERS))} }}}}")
        elif kind == "grow":
            op = draw(st.sampled_from(["~", "+", "*"]))
            right = "2" if op == "*" else "ns.s"
            pieces.append(
                "{% set ns = namespace(s='xy') %}{% for i in range(" + str(draw(st.integers(1, 60)))
                + f") %}}{{% set ns.s = ns.s {op} {right} %}}{{% endfor %}}{{{{ ns.s | length }}}}"
            )  # fmt: skip
        else:
            name = draw(
                st.sampled_from(["report.md.j2", "partials/sizes.md.j2", "/etc/passwd", "../x"])
            )
            pieces.append(f'{{% include "{name}" %}}')
    return "\n".join(pieces) + "\n"


def check_template(body: str) -> None:
    """A template renders or fails with one LabreportError naming the template; it starts no
    process and opens no file outside its folder, the file and the defaults."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "t.md.j2").write_text(body)
        with watched(folder, SYNTHETIC):
            try:
                render.render([SYNTHETIC], templates=folder, template="t.md.j2", with_charts=False)
            except LabreportError as error:
                assert error.message and "\n" not in error.message, error.message


# -- fuzzed lab folders: whatever is planted in a lab, rendering stays in it --------------------

PLANTS = {
    "report.md": ["file", "link-in", "link-out", "folder", "loop", "none"],
    "report": ["folder", "link-out", "file", "loop", "other-manifest", "junk-manifest", "none"],
    "measurements/m.json": ["valid", "link-out", "other-lab", "none", "loop"],
    "templates": ["none", "link-out", "override", "partial-link-out"],
}


@st.composite
def fuzzed_lab_folders(draw: st.DrawFn) -> dict[str, str]:
    return {where: draw(st.sampled_from(kinds)) for where, kinds in PLANTS.items()}


def _plant(lab: Path, outside: Path, where: str, kind: str) -> None:
    path = lab / where
    path.parent.mkdir(parents=True, exist_ok=True)
    out = outside / Path(where).name
    if kind in ("file", "valid"):
        path.write_text(SYNTHETIC.read_text() if where.endswith(".json") else "old report\n")
    elif kind == "link-in":
        (lab / "real.md").write_text("the real one\n")
        path.symlink_to(lab / "real.md")
    elif kind == "link-out":
        path.symlink_to(out)
    elif kind == "folder":
        path.mkdir()
    elif kind == "loop":
        path.symlink_to(path)
    elif kind == "other-lab":
        data = json.loads(SYNTHETIC.read_text())
        path.write_text(json.dumps({**data, "lab": "lab13"}))
    elif kind.endswith("manifest"):
        path.mkdir()
        text = '{"charts": [], "report": "other.md"}' if kind == "other-manifest" else "{junk"
        (path / render.MANIFEST).write_text(text)
    elif kind == "override":
        (path / "partials").mkdir(parents=True)
        (path / "partials" / "program.md.j2").write_text("our own program text\n")
    elif kind == "partial-link-out":
        (path / "partials").mkdir(parents=True)
        (path / "partials" / "program.md.j2").symlink_to(outside / "secret.j2")


def check_lab_folder(plants: dict[str, str]) -> None:
    """render --lab (and --check) over a lab with these plants: a report or one error; nothing
    outside the lab read, written or replaced; every file written inside the lab."""
    from labreport.commands import render as render_command

    with tempfile.TemporaryDirectory() as scratch:
        lab, outside = Path(scratch, "lab"), Path(scratch, "outside")
        lab.mkdir()
        outside.mkdir()
        for name in ("report.md", "m.json", "secret.j2", "report", "templates"):
            (outside / name).write_text(SYNTHETIC.read_text() if name == "m.json" else "SECRET\n")
        (lab / "lab.toml").write_text('name = "lab12"\n')
        for where, kind in plants.items():
            _plant(lab, outside, where, kind)
        before = {p.name: p.read_bytes() for p in outside.iterdir()}
        for check in (True, False):
            with watched(lab):
                try:
                    done = render_command.run(
                        render_command.Options([], lab, None, None, "report.md.j2", check)
                    )
                except LabreportError as error:
                    assert error.message and "\n" not in error.message
                    continue
            for path in done.written:
                assert path.resolve().is_relative_to(lab.resolve()), path
        assert {p.name: p.read_bytes() for p in outside.iterdir()} == before
        for path in lab.rglob("*.md"):  # nothing from outside read into a report
            if path.is_file() and not path.is_symlink():
                assert "SECRET" not in path.read_text(errors="replace")
