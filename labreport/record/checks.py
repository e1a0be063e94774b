"""Is a run's output what the lab program must print? A sample counts only if this says yes.

The lab config lists rules (rules.CheckRule); every one must hold. A rule that does not says
which one it is (its place in check.rules and its kind) and where (the key), with what it found.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from labreport.config import WagiConfig
from labreport.rules import (
    CheckConfig,
    CheckRule,
    EqualsRule,
    JsonRule,
    LocalTimeRule,
    NearNowRule,
    RangeRule,
    RegexRule,
    TextRule,
)

# Longer outputs are cut before a regular expression sees them: a lab's pattern is untrusted,
# and the lab programs print a few lines.
MAX_CHECKED_CHARS = 65_536


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    reason: str = ""


class RuleError(Exception):
    """One rule did not hold; the message says what was found."""


_MISSING = object()

JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def _is(value: object, json_type: str) -> bool:
    if isinstance(value, bool) and json_type in {"integer", "number"}:
        return False  # JSON's true is not a number, though Python's is
    return isinstance(value, JSON_TYPES[json_type])


def _at(document: object, key: str) -> object:
    """The value at a dotted key (a number indexes a list), or _MISSING."""
    value = document
    for part in key.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _value(document: object, key: str, json_type: str = "") -> object:
    value = _at(document, key)
    if value is _MISSING:
        raise RuleError("no such key")
    if json_type and not _is(value, json_type):
        raise RuleError(f"{_shown(value)} is not {_a(json_type)}")
    return value


def _a(json_type: str) -> str:
    return f"{'an' if json_type[0] in 'aeiou' else 'a'} {json_type}"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _json(rule: JsonRule, text: str, document: object, now_unix_s: float) -> None:
    missing = [key for key in rule.keys if _at(document, key) is _MISSING]
    if missing:
        raise RuleError(f"missing keys: {', '.join(missing)}")
    for key, json_type in rule.keys.items():
        value = _at(document, key)
        if not _is(value, json_type):
            raise RuleError(f"{key} is {_shown(value)}, not {_a(json_type)}")


def _equals(rule: EqualsRule, text: str, document: object, now_unix_s: float) -> None:
    value = _value(document, rule.key)
    same_kind = isinstance(value, bool) == isinstance(rule.value, bool)
    if not same_kind or value != rule.value:
        raise RuleError(f"{_shown(value)}, expected {_shown(rule.value)}")


def _regex(rule: RegexRule, text: str, document: object, now_unix_s: float) -> None:
    subject = _value(document, rule.key, "string") if rule.key else text.rstrip("\n")
    assert isinstance(subject, str)
    if re.fullmatch(rule.pattern, subject[:MAX_CHECKED_CHARS]) is None:
        raise RuleError(f"{_shown(subject)} does not match {rule.pattern!r}")


def _range(rule: RangeRule, text: str, document: object, now_unix_s: float) -> None:
    number = _value(document, rule.key, "number")
    assert isinstance(number, int | float)
    low = -math.inf if rule.min is None else rule.min
    high = math.inf if rule.max is None else rule.max
    if not (math.isfinite(number) and low <= number <= high):
        raise RuleError(f"{number!r} is outside [{low:g}, {high:g}]")


def _near_now(rule: NearNowRule, text: str, document: object, now_unix_s: float) -> None:
    timestamp = _value(document, rule.key, "integer")
    assert isinstance(timestamp, int)
    skew = abs(timestamp - now_unix_s)
    if skew > rule.max_skew_s:
        raise RuleError(f"{skew:.0f} s from now (limit {rule.max_skew_s:g} s)")


def _local_time(rule: LocalTimeRule, text: str, document: object, now_unix_s: float) -> None:
    timestamp = _value(document, rule.timestamp_key, "integer")
    local_text = _value(document, rule.key, "string")
    assert isinstance(timestamp, int) and isinstance(local_text, str)
    try:
        local = datetime.strptime(local_text, rule.format)
    except ValueError:
        raise RuleError(f"{local_text!r} does not match {rule.format!r}") from None
    zone = timezone(timedelta(hours=rule.utc_offset_hours))
    try:
        expected = datetime.fromtimestamp(timestamp, zone).replace(tzinfo=None)
    except (OverflowError, OSError, ValueError):
        raise RuleError(f"{rule.timestamp_key} {timestamp} is not a time") from None
    if local != expected:
        raise RuleError(
            f"{local_text!r} is not {rule.timestamp_key} {timestamp} at "
            f"UTC{rule.utc_offset_hours:+d} ({expected:%Y-%m-%d %H:%M:%S})"
        )


def _text(rule: TextRule, text: str, document: object, now_unix_s: float) -> None:
    printed = text.rstrip("\n")
    if printed != rule.text:
        raise RuleError(f"{_shown(printed)}, expected {_shown(rule.text)}")


# Each rule's test: raises RuleError when the rule does not hold for the output (text) and its
# parsed JSON (document, None when no rule needs it).
RULES: dict[type, Callable[[Any, str, object, float], None]] = {
    JsonRule: _json,
    EqualsRule: _equals,
    RegexRule: _regex,
    RangeRule: _range,
    NearNowRule: _near_now,
    LocalTimeRule: _local_time,
    TextRule: _text,
}


def describe(index: int, rule: CheckRule) -> str:
    """Which rule, and where: `check.rules[2] (range at result.count)`."""
    where = getattr(rule, "key", "") or ""
    return f"check.rules[{index}] ({rule.rule}{' at ' + where if where else ''})"


def _needs_json(rules: CheckConfig) -> bool:
    return any(isinstance(rule, JsonRule) or getattr(rule, "key", "") for rule in rules.rules)


def check_output(stdout: str, rules: CheckConfig, now_unix_s: float) -> CheckResult:
    """Every rule of the lab config holds for stdout; else the first that does not, and why."""
    document: object = None
    if _needs_json(rules):
        try:
            document = json.loads(stdout)
        except (json.JSONDecodeError, RecursionError) as error:
            shown = stdout.strip()[:80] or "(empty)"
            message = error.msg if isinstance(error, json.JSONDecodeError) else "nested too deeply"
            return CheckResult(False, f"not JSON ({message}): {shown!r}")
        if not isinstance(document, dict):
            return CheckResult(False, f"JSON is a {type(document).__name__}, not an object")
    for index, rule in enumerate(rules.rules):
        try:
            RULES[type(rule)](rule, stdout, document, now_unix_s)
        except RuleError as failure:
            return CheckResult(False, f"{describe(index, rule)}: {failure}")
    return CheckResult(True)


def parse_cgi(output: str) -> tuple[int, dict[str, str], str]:
    """A CGI response (RFC 3875): header lines, a blank line, the body. The status is the
    `Status:` header's code, else 302 with a Location, else 200 with a Content-Type; header
    names come back in lower case. ValueError says what is wrong."""
    head, separator, body = output.replace("\r\n", "\n").partition("\n\n")
    if not separator:
        raise ValueError(f"no blank line after the CGI headers: {output.strip()[:80]!r}")
    headers: dict[str, str] = {}
    for line in head.splitlines():
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise ValueError(f"not a CGI header line: {line!r}")
        headers[name.strip().lower()] = value.strip()
    if "status" in headers:
        code = headers["status"].split(" ")[0]
        if not (code.isdigit() and 100 <= int(code) <= 599):
            raise ValueError(f"Status header is not a code: {headers['status']!r}")
        return int(code), headers, body
    if "location" in headers:
        return 302, headers, body
    if "content-type" in headers:
        return 200, headers, body
    raise ValueError("none of Status, Content-Type, Location among the CGI headers")


def check_cgi(stdout: str, wagi: WagiConfig, rules: CheckConfig, now_unix_s: float) -> CheckResult:
    """A CGI response (parse_cgi) with the status and Content-Type the lab expects, and a body
    that passes check_output."""
    try:
        status, headers, body = parse_cgi(stdout)
    except ValueError as error:
        return CheckResult(False, str(error))
    if status != wagi.expect_status:
        return CheckResult(False, f"status {status}, expected {wagi.expect_status}")
    content_type = headers.get("content-type", "")
    if content_type.split(";")[0].strip() != wagi.expect_content_type:
        return CheckResult(
            False, f"Content-Type {content_type!r}, expected {wagi.expect_content_type}"
        )
    verdict = check_output(body, rules, now_unix_s)
    if not verdict.ok:
        return CheckResult(False, f"body: {verdict.reason}")
    return CheckResult(True, f"status {status}, Content-Type {content_type}, body checked")
