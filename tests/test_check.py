from __future__ import annotations

import json

import pytest

from labreport import config
from labreport.check import check_output

NOW = 1765797173  # 2025-12-15 11:12:53 UTC = 14:12:53 MSK


def good(**changes: object) -> str:
    document: dict[str, object] = {"moscow_time": "2025-12-15 14:12:53 MSK", "timestamp": NOW}
    document.update(changes)
    return json.dumps(document)


def test_accepts_real_moscow_time(lab: config.LabConfig) -> None:
    verdict = check_output(good(), lab.check, NOW + 1)
    assert verdict.ok, verdict.reason


@pytest.mark.parametrize(
    ("stdout", "now", "reason"),
    [
        ("", NOW, "not JSON"),
        ("[1]", NOW, "not an object"),
        (json.dumps({"timestamp": NOW}), NOW, "missing keys: moscow_time"),
        (good(timestamp="1"), NOW, "not an integer"),
        (good(moscow_time="2025-12-15T14:12:53+03:00"), NOW, "does not match"),
        (good(moscow_time="2025-12-15 11:12:53 MSK"), NOW, "at UTC+3"),  # UTC passed off as MSK
        (good(), NOW + 3600, "from now"),
    ],
)
def test_rejects(lab: config.LabConfig, stdout: str, now: float, reason: str) -> None:
    verdict = check_output(stdout, lab.check, now)
    assert not verdict.ok
    assert reason in verdict.reason
