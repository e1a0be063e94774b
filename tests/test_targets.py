"""One report across targets: files of one lab from different hosts or engines side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from labreport.errors import LabreportError
from labreport.report import render

from .fakes import SYNTHETIC, synthetic_variant
from .fixtures.make_fixture import RUNTIMES


def target_file(
    tmp_path: Path, name: str, engine_id: str, factor: float = 1.0, lab: str = ""
) -> Path:
    """The synthetic fixture (made-up data) as measured on another engine."""
    engine = {
        "engine_id": engine_id,
        "engine_version": f"26.1.{engine_id}",
        "source": "given",
        "url": f"tcp://10.213.88.2:{engine_id}",
        "image_store": "containerd image store",
        "shares_host_with_client": "no",
    }
    factors = {runtime: factor for runtime in RUNTIMES}
    return synthetic_variant(tmp_path / name, factors, lab, engine)


def test_two_targets_side_by_side_with_a_comparison_across_them(tmp_path: Path) -> None:
    other = target_file(tmp_path, "other.json", "7", factor=1.5)
    markdown = render.render([SYNTHETIC, other]).text
    assert "2 targets, one engine on one host each" in markdown
    short = "testhost / Docker 26.1.7 (given)"
    rows = [line for line in markdown.splitlines() if line.startswith("| ctr-runc |")]
    startup = [line for line in rows if "| 11/11 |" in line and "| testhost / " in line]
    assert len(startup) == 2  # the same runtime's targets side by side (in the appendix)
    assert "the primary target's figures (testhost / no Docker engine)" in markdown  # the tasks'
    assert "testhost / no Docker engine" in startup[0] and short in startup[1]
    assert any(short in line and "| once |" in line for line in rows)  # memory per target too
    across = next(line for line in markdown.splitlines() if f"**ctr-runc on {short}**" in line)
    assert "Mann-Whitney U, 11 against 11 runs (unpaired)" in across
    assert "**slower** (+50.0 %)" in across
    assert f"| {short} | 26.1.7 (ID `7`" in markdown  # listed under where it was measured
    # The charts label every target.
    chart = next(c for c in render.render([SYNTHETIC, other]).charts if c.kind == "startup")
    assert f"ctr-runc @ {short}" in chart.alt


def test_one_file_renders_as_before_and_has_no_target_column() -> None:
    markdown = render.render([SYNTHETIC]).text
    assert "| runtime | valid | median |" in markdown
    assert "Across targets" not in markdown and "targets, one engine" not in markdown


def test_files_of_different_labs_are_refused(tmp_path: Path) -> None:
    other = target_file(tmp_path, "other.json", "7", lab="lab13")
    with pytest.raises(LabreportError, match="files of different labs: lab12, lab13") as raised:
        render.render([SYNTHETIC, other])
    assert raised.value.hint == "render the files of one lab together"


def test_the_same_target_twice_with_the_same_runtime_is_refused(tmp_path: Path) -> None:
    first = target_file(tmp_path, "a.json", "7")
    second = target_file(tmp_path, "b.json", "7")
    with pytest.raises(LabreportError, match="was also measured in"):
        render.render([first, second])
