"""Loading measurement files: every failure names the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labreport import config
from labreport.errors import LabreportError
from labreport.measure.plan import Plan
from labreport.measure.run import measure
from labreport.record.files import load_measurement
from labreport.record.models import SCHEMA_VERSION

from . import fakes
from .fakes import FakeRuntime


@pytest.fixture
def good_file(lab: config.LabConfig, tmp_path: Path) -> Path:
    output = tmp_path / "good.json"
    measure(
        lab,
        Plan(runs=2, warmup=0, timeout_s=5, output=output),
        {"fake": FakeRuntime},
        environment=fakes.environment,
        endpoints=fakes.NOWHERE,
        builder=fakes.no_build,
    )
    return output


def rewrite(path: Path, change: object) -> Path:
    data = json.loads(path.read_text())
    change(data)  # type: ignore[operator]
    path.write_text(json.dumps(data))
    return path


def test_corrupt_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(LabreportError, match=r"bad\.json: not valid JSON"):
        load_measurement(path)


def test_foreign_json(tmp_path: Path) -> None:
    path = tmp_path / "package.json"
    path.write_text('{"name": "left-pad"}')
    with pytest.raises(LabreportError, match="not a labreport measurement file"):
        load_measurement(path)


def test_newer_schema_says_upgrade(good_file: Path) -> None:
    rewrite(good_file, lambda d: d.update(schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(LabreportError, match=f"schema_version {SCHEMA_VERSION + 1}") as raised:
        load_measurement(good_file)
    assert raised.value.hint == "upgrade labreport"


def test_a_version_1_file_is_still_read(good_file: Path) -> None:
    """Version 2 only added the shims' records: a file from before reads as it was."""

    def as_version_1(data: dict[str, Any]) -> None:
        data["schema_version"] = 1
        for sample in data["samples"]:
            sample.pop("shim", None)

    rewrite(good_file, as_version_1)
    assert load_measurement(good_file).schema_version == 1
    rewrite(good_file, lambda d: d.update(schema_version=True))
    with pytest.raises(LabreportError, match="schema_version True"):
        load_measurement(good_file)


def test_a_schema_4_file_reads_its_declared_run_count_as_a_field(good_file: Path) -> None:
    """Schema 4 said a declared run count as text in details; it reads as declared_runs."""

    def as_version_4(data: dict[str, Any]) -> None:
        data["schema_version"] = 4
        for record in data["runtimes"]:
            record.pop("declared_runs", None)
        data["runtimes"][0]["details"]["runs_rule"] = (
            "fixed: 2 measured runs of 3 (the lab config's measure.runs_by_runtime)"
        )

    rewrite(good_file, as_version_4)
    record = load_measurement(good_file).runtimes[0]
    assert (record.declared_runs, "runs_rule" in record.details) == (2, False)


def test_bad_field_names_its_path(good_file: Path) -> None:
    rewrite(good_file, lambda d: d["samples"][1].update(wall_ns=0))
    with pytest.raises(
        LabreportError, match=r"good\.json: samples\.1\.wall_ns: Input should be greater than 0"
    ):
        load_measurement(good_file)


def test_unknown_field_is_refused(good_file: Path) -> None:
    rewrite(good_file, lambda d: d["environment"].update(gpu="none"))
    with pytest.raises(LabreportError, match=r"environment\.gpu: Extra inputs are not permitted"):
        load_measurement(good_file)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LabreportError, match="no such file"):
        load_measurement(tmp_path / "nope.json")
