"""hey, the load tool beside labreport's checked client: its CSV read strictly, and the real hey
against a local server (answers, a closed port, a level cut off at its time limit)."""

from __future__ import annotations

import http.server
import time
from collections.abc import Callable, Iterator

import pytest

from labreport.analysis.serving import serving_view
from labreport.record.models import ServingLevel, ServingRecord
from labreport.runtimes import hey
from labreport.runtimes.serving import free_port

from .conftest import serving

# As hey 0.1.4 wrote it here: seconds at 0.1 ms resolution, offset from the load's start.
CSV = """response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset
0.0029,0.0006,0.0000,0.0003,0.0019,0.0001,200,0.0010
0.0038,0.0004,0.0000,0.0003,0.0030,0.0002,200,0.0013
0.0051,0.0012,0.0000,0.0002,0.0014,0.0022,500,0.0003
"""


def test_csv_keeps_every_latency_and_status_and_counts_the_unanswered() -> None:
    level = hey.parse_hey_csv(CSV, concurrency=2, requested=4)
    assert level.latencies_ns == [2_900_000, 3_800_000, 5_100_000]
    assert level.statuses == {"200": 2, "500": 1}
    assert level.unanswered == 1
    assert level.span_ns == 5_400_000  # the last answer: 0.0003 + 0.0051 s
    record = ServingRecord(
        runtime="native", model="server", description="", command="", client="",
        tool_levels=[level],
    )  # fmt: skip
    view = serving_view(record).tool_level(2)
    assert view is not None
    # Only status 200 counts as served; the 500 and the unanswered one are 'other'.
    assert (view.ok, view.other, view.p50_ms) == (2, 2, 3.8)
    assert view.per_second == pytest.approx(2 / 0.0054)


def test_the_pace_is_hey_over_the_checked_client_only_where_both_served_all() -> None:
    # The checked client: 4 requests in 0.1 s (40/s); hey: 3 answers of 4, then all 3 of 3.
    checked = ServingLevel(concurrency=2, requests=4, ok=4, wall_ns=100_000_000)
    partial = hey.parse_hey_csv(CSV, concurrency=2, requested=4)
    answered = hey.parse_hey_csv(CSV.replace(",500,", ",200,"), concurrency=2, requested=3)
    record = ServingRecord(
        runtime="native", model="server", description="", command="", client="",
        levels=[checked], tool_levels=[partial],
    )  # fmt: skip
    assert serving_view(record).tool_pace(2) is None  # hey's level has a 500 and a miss
    assert serving_view(record).tool_pace(8) is None  # no such level
    record = record.model_copy(update={"tool_levels": [answered]})
    assert serving_view(record).tool_pace(2) == pytest.approx((3 / 0.0054) / 40)
    failed = checked.model_copy(update={"ok": 3})
    assert serving_view(record.model_copy(update={"levels": [failed]})).tool_pace(2) is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no header"),
        ("garbage\n", "no header"),
        ("response-time,status-code,offset\n0.1,200\n", "a row without"),
        ("response-time,status-code,offset\n-1,200,0\n", "out of range"),
        ("response-time,status-code,offset\nnan?,200,0\n", "could not convert"),
        ("response-time,status-code,offset\n" + "0.1,200,0\n" * 3, "3 rows for 2 requests"),
    ],
)
def test_csv_that_is_not_heys_is_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        hey.parse_hey_csv(text, concurrency=1, requested=2)


def test_an_empty_load_is_all_unanswered() -> None:
    level = hey.parse_hey_csv(CSV.splitlines()[0] + "\n", concurrency=1, requested=5)
    assert (level.unanswered, level.latencies_ns, level.span_ns) == (5, [], 0)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay_s = 0.0

    def do_GET(self) -> None:
        time.sleep(self.delay_s)
        body = b'{"ok": true}'
        self.send_response(200 if self.path == "/" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, *args: object) -> None:
        pass  # hey, killed or timed out, closes connections mid-answer: expected here


@pytest.fixture
def server() -> Iterator[str]:
    try:
        with serving(_Server(("127.0.0.1", 0), _Handler)) as base:
            yield base
    finally:
        _Handler.delay_s = 0.0


@pytest.fixture
def tool(needs: Callable[[str], None]) -> hey.LoadTool:
    needs("hey")
    found = hey.find_tool()
    assert isinstance(found, hey.LoadTool)
    return found


def test_real_hey_sends_the_count_at_the_concurrency(tool: hey.LoadTool, server: str) -> None:
    level = tool.level(f"{server}/", concurrency=4, requests=40, time_limit_s=30)
    assert level.failure == ""
    assert (level.statuses, level.unanswered, len(level.latencies_ns)) == ({"200": 40}, 0, 40)
    assert 0 < level.span_ns < 30e9
    assert "Debian" in tool.version or tool.version == "(version unknown)"
    assert "{requests}" in tool.command(server) and "{concurrency}" in tool.command(server)
    # Fewer requests than workers: hey would refuse, so the workers are cut to the count.
    assert tool.level(f"{server}/", concurrency=8, requests=3, time_limit_s=30).statuses == {
        "200": 3
    }
    # hey sends requests // workers from each worker: 40 at 32 workers is 32, recorded as such.
    uneven = tool.level(f"{server}/", concurrency=32, requests=40, time_limit_s=30)
    assert (uneven.requested, uneven.statuses, uneven.unanswered) == (32, {"200": 32}, 0)


def test_real_hey_counts_what_was_not_served(tool: hey.LoadTool, server: str) -> None:
    assert tool.level(f"{server}/nothing", 2, 6, 30).statuses == {"404": 6}
    closed = tool.level(f"http://127.0.0.1:{free_port()}/", 2, 6, 30)
    assert (closed.failure, closed.unanswered, closed.statuses) == ("", 6, {})


def test_real_hey_past_its_time_is_killed_and_says_so(
    tool: hey.LoadTool, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _Handler.delay_s = 2.0
    monkeypatch.setattr(hey, "REQUEST_TIMEOUT_S", 1)  # the process limit is time + this + 5
    started = time.monotonic()
    level = tool.level(f"{server}/", concurrency=1, requests=10, time_limit_s=0.1)
    # hey -t 1 fails each 2 s request one after another (10 s); the level's limit is 6.1 s.
    assert 6 < time.monotonic() - started < 15
    assert "hey at concurrency 1 did not finish within 6.1 s" in level.failure
    assert level.latencies_ns == []


def test_missing_hey_is_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hey.paths, "which", lambda name: None)
    assert "hey not on PATH" in str(hey.find_tool())
