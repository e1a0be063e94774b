"""Is a run's output what the lab program must print? A sample counts only if this says yes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from labreport.config import CheckConfig, WagiConfig


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    reason: str = ""


def check_output(stdout: str, rules: CheckConfig, now_unix_s: float) -> CheckResult:
    """Valid JSON with the required keys; local time at the configured offset; near now."""
    try:
        document = json.loads(stdout)
    except json.JSONDecodeError as error:
        shown = stdout.strip()[:80] or "(empty)"
        return CheckResult(False, f"not JSON ({error.msg}): {shown!r}")
    if not isinstance(document, dict):
        return CheckResult(False, f"JSON is a {type(document).__name__}, not an object")
    missing = [key for key in rules.required_keys if key not in document]
    if missing:
        return CheckResult(False, f"missing keys: {', '.join(missing)}")
    timestamp = document[rules.timestamp_key]
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        return CheckResult(False, f"{rules.timestamp_key} is not an integer: {timestamp!r}")
    local_text = document[rules.local_time_key]
    try:
        local = datetime.strptime(str(local_text), rules.local_time_format)
    except ValueError:
        return CheckResult(
            False,
            f"{rules.local_time_key} {local_text!r} does not match {rules.local_time_format!r}",
        )
    zone = timezone(timedelta(hours=rules.utc_offset_hours))
    expected_local = datetime.fromtimestamp(timestamp, zone).replace(tzinfo=None)
    if local != expected_local:
        return CheckResult(
            False,
            f"{rules.local_time_key} {local_text!r} is not {rules.timestamp_key} {timestamp} "
            f"at UTC{rules.utc_offset_hours:+d} ({expected_local:%Y-%m-%d %H:%M:%S})",
        )
    skew = abs(timestamp - now_unix_s)
    if skew > rules.max_clock_skew_s:
        return CheckResult(
            False,
            f"{rules.timestamp_key} is {skew:.0f} s from now (limit {rules.max_clock_skew_s:g} s)",
        )
    return CheckResult(True)


def check_cgi(stdout: str, wagi: WagiConfig, rules: CheckConfig, now_unix_s: float) -> CheckResult:
    """A CGI response: headers, a blank line, then a body that passes check_output.

    The status comes from a `Status:` header (CGI's way), 200 when there is none.
    """
    head, separator, body = stdout.replace("\r\n", "\n").partition("\n\n")
    if not separator:
        return CheckResult(False, f"no blank line after the CGI headers: {stdout.strip()[:80]!r}")
    headers: dict[str, str] = {}
    for line in head.splitlines():
        name, colon, value = line.partition(":")
        if not colon:
            return CheckResult(False, f"not a CGI header line: {line!r}")
        headers[name.strip().lower()] = value.strip()
    status_text = headers.get("status", "200")
    try:
        status = int(status_text.split()[0])
    except (ValueError, IndexError):
        return CheckResult(False, f"Status header is not a code: {status_text!r}")
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
