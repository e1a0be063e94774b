from __future__ import annotations

import json
import tomllib

import pytest
from pydantic import ValidationError

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
        (json.dumps({"timestamp": NOW}), NOW, "check.rules[0] (json): missing keys: moscow_time"),
        (good(timestamp="1"), NOW, "timestamp is '1', not an integer"),
        (good(timestamp=True), NOW, "timestamp is True, not an integer"),
        (
            good(moscow_time="2025-12-15T14:12:53+03:00"),
            NOW,
            "check.rules[1] (local_time at moscow_time): '2025-12-15T14:12:53+03:00' does not",
        ),
        (good(moscow_time="2025-12-15 11:12:53 MSK"), NOW, "at UTC+3"),  # UTC passed off as MSK
        (good(), NOW + 3600, "check.rules[2] (timestamp_near_now at timestamp): 3600 s from now"),
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
        (cgi(body="{}"), "body: check.rules[0] (json): missing keys"),
        ("Content-Type application/json\n\n" + good(), "not a CGI header line"),
    ],
)
def test_cgi_rejects(lab: config.LabConfig, stdout: str, reason: str) -> None:
    verdict = check_cgi(stdout, lab.wagi, lab.check, NOW)
    assert not verdict.ok
    assert reason in verdict.reason


def rules(*tables: str) -> config.CheckConfig:
    """Check rules as a lab config writes them (TOML), validated as a lab config is."""
    text = "\n".join(f"[[rules]]\n{table}" for table in tables)
    return config.CheckConfig.model_validate(tomllib.loads(text))


@pytest.mark.parametrize(
    ("rule", "stdout", "reason"),
    [
        ('rule = "json"\nkeys = { "result.count" = "integer" }', '{"result": {"count": 3}}', ""),
        ('rule = "json"\nkeys = { "items.1" = "string" }', '{"items": [1, "b"]}', ""),
        ('rule = "json"\nkeys = { n = "number" }', '{"n": 2.5}', ""),
        ('rule = "json"\nkeys = { n = "number" }', '{"n": true}', "n is True, not a number"),
        ('rule = "equals"\nkey = "count"\nvalue = 9592', '{"count": 9592}', ""),
        ('rule = "equals"\nkey = "count"\nvalue = 9592', '{"count": 9591}', "9591, expected 9592"),
        ('rule = "equals"\nkey = "ok"\nvalue = 1', '{"ok": true}', "True, expected 1"),
        ('rule = "equals"\nkey = "n"\nvalue = "x"', '{"m": "x"}', "(equals at n): no such key"),
        ('rule = "regex"\nkey = "v"\npattern = "[0-9a-f]{8}"', '{"v": "deadbeef"}', ""),
        ('rule = "regex"\nkey = "v"\npattern = "[0-9a-f]{8}"', '{"v": "deadbeefs"}', "not match"),
        ('rule = "regex"\nkey = "v"\npattern = "x"', '{"v": 1}', "1 is not a string"),
        ('rule = "regex"\npattern = "hello, .+"', "hello, world\n", ""),
        ('rule = "regex"\npattern = "hello, .+"', "bye\n", "check.rules[0] (regex): 'bye' does"),
        ('rule = "range"\nkey = "ms"\nmin = 0\nmax = 10', '{"ms": 10}', ""),
        ('rule = "range"\nkey = "ms"\nmin = 0', '{"ms": -1}', "-1 is outside [0, inf]"),
        ('rule = "range"\nkey = "ms"\nmax = 5', '{"ms": "3"}', "'3' is not a number"),
        ('rule = "text"\ntext = "42"', "42\n", ""),
        ('rule = "text"\ntext = "42"', "43\n", "'43', expected '42'"),
    ],
)
def test_each_rule(rule: str, stdout: str, reason: str) -> None:
    verdict = check_output(stdout, rules(rule), NOW)
    assert verdict.ok == (not reason), verdict.reason
    assert reason in verdict.reason


def test_a_text_lab_does_not_parse_json_but_a_keyed_rule_does() -> None:
    assert check_output("not json", rules('rule = "text"\ntext = "not json"'), NOW).ok
    keyed = rules('rule = "regex"\npattern = ".*"', 'rule = "range"\nkey = "n"\nmin = 0')
    assert "not JSON" in check_output("not json", keyed, NOW).reason
    assert "not an object" in check_output("[1]", keyed, NOW).reason


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('rule = "nearby"', "does not match any of the expected tags"),
        ('rule = "regex"\npattern = "("', "not a regular expression"),
        ('rule = "range"\nkey = "n"', "a range needs min, max or both"),
        ('rule = "range"\nkey = "n"\nmin = 2\nmax = 1', "min 2 is above max 1"),
        ('rule = "equals"\nkey = "a..b"\nvalue = 1', "String should match pattern"),
        (
            'rule = "local_time"\nkey = "t"\nformat = "%H"\n'
            'utc_offset_hours = 15\ntimestamp_key = "s"',
            "less than or equal to 14",
        ),
        ('rule = "text"\ntext = "x"\nkey = "y"', "Extra inputs"),
    ],
)
def test_a_rule_the_config_cannot_hold_is_refused(rule: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        rules(rule)


def test_no_rule_at_all_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least 1 item"):
        config.CheckConfig.model_validate({"rules": []})
