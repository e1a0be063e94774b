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

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from labreport.errors import LabreportError
from labreport.record.models import Measurement
from labreport.report import render

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
    assert report.markdown.startswith("# ")
