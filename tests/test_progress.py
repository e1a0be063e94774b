"""The estimate of what remains: each runtime's runs at that runtime's own pace."""

from __future__ import annotations

from labreport.measure.progress import Pace, shown_duration


def test_each_kind_of_step_is_weighed_by_its_own_pace() -> None:
    pace = Pace(left={"slow": 3, "fast": 3})
    assert pace.remaining_s() is None  # nothing timed yet: no guess
    pace.step("slow", 0.0)
    pace.step("fast", 5.0)  # slow took 5 s
    pace.step("slow", 5.5)  # fast took 0.5 s
    # slow: 1 left at 5 s (one is under way, counted as done by step); fast: 2 left at 0.5 s
    assert pace.remaining_s() == 1 * 5.0 + 2 * 0.5


def test_a_kind_not_seen_yet_takes_the_mean_of_all() -> None:
    pace = Pace(left={"a": 2, "b": 2})
    pace.step("a", 0.0)
    pace.step("a", 2.0)
    assert pace.remaining_s() == 0 * 2.0 + 2 * 2.0


def test_shown_duration() -> None:
    assert shown_duration(None) == ""
    assert shown_duration(42.4) == "~42 s left"
    assert shown_duration(125) == "~2 min 05 s left"
