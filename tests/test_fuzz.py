"""Fuzzed measurement files and template contexts, CI-sized (benchmarks/fuzz.py runs 10,000+)."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings

from .fuzz_targets import (
    BASE,
    check_lab_folder,
    check_mutated,
    check_template,
    check_valid,
    fuzzed_lab_folders,
    fuzzed_templates,
    mutated_files,
    valid_measurements,
)


def sized(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
        database=None,
    )


@sized(300)
@given(mutated_files())
def test_mutated_files_are_rendered_or_refused_in_one_error(content: bytes) -> None:
    check_mutated(content)


@sized(120)
@given(valid_measurements())
def test_every_valid_file_renders_with_the_shipped_templates(data: dict[str, Any]) -> None:
    check_valid(data)


@sized(12)
@given(valid_measurements())
def test_valid_files_render_with_their_charts(data: dict[str, Any]) -> None:
    check_valid(data, with_charts=True)


def test_found_by_fuzzing_an_image_without_a_size_method_is_refused_not_a_template_error() -> None:
    data = copy.deepcopy(BASE)
    del data["images"][0]["size_methods"]["archive_size_bytes"]
    check_mutated(json.dumps(data).encode())


def test_found_by_fuzzing_shim_phases_of_zero_ns_render() -> None:
    data = copy.deepcopy(BASE)
    for sample in data["samples"]:
        if sample["runtime"] == "ctr-wasmtime" and sample.get("shim"):
            for phase in sample["shim"]["phases"]:
                phase["ns"] = 0
    check_valid(data)


@sized(60)
@given(fuzzed_templates())
def test_fuzzed_templates_render_or_fail_in_one_error_and_touch_nothing_else(body: str) -> None:
    check_template(body)


@sized(40)
@given(fuzzed_lab_folders())
def test_whatever_is_planted_in_a_lab_rendering_stays_inside_it(plants: dict[str, str]) -> None:
    check_lab_folder(plants)
