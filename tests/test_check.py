from __future__ import annotations

import json

import pytest

from labreport import config
from labreport.record.checks import check_cgi, check_output

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


def cgi(status: str | None = None, content_type: str = "application/json", body: str = "") -> str:
    head = [f"Status: {status}"] if status else []
    head.append(f"Content-Type: {content_type}")
    return "\n".join(head) + "\n\n" + (body or good())


def test_cgi_response_with_default_status_passes(lab: config.LabConfig) -> None:
    verdict = check_cgi(cgi(), lab.wagi, lab.check, NOW)
    assert verdict.ok, verdict.reason
    assert "status 200" in verdict.reason


@pytest.mark.parametrize(
    ("stdout", "reason"),
    [
        (good(), "no blank line"),
        (cgi(status="404 Not Found"), "status 404, expected 200"),
        (cgi(content_type="text/plain"), "Content-Type 'text/plain'"),
        (cgi(body="{}"), "body: missing keys"),
        ("Content-Type application/json\n\n" + good(), "not a CGI header line"),
    ],
)
def test_cgi_rejects(lab: config.LabConfig, stdout: str, reason: str) -> None:
    verdict = check_cgi(stdout, lab.wagi, lab.check, NOW)
    assert not verdict.ok
    assert reason in verdict.reason
