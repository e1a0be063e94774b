"""Fuzzed measurement files and template contexts, CI-sized (benchmarks/fuzz.py runs 10,000+)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings

from .fuzz_targets import check_mutated, check_valid, mutated_files, valid_measurements


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
