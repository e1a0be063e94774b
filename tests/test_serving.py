"""The serving procedure every runtime shares (memory.measure_service), against a real local
server that answers as lab 12's program does, with memory read by a counter: what is recorded
for a load too short for the periodic memory reading."""

from __future__ import annotations

import http.server
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from labreport import config
from labreport.runtimes import memory
from labreport.runtimes.base import RunContext

from . import fakes
from .conftest import serving


class _Moscow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        now = time.time()
        moscow = datetime.fromtimestamp(now, UTC) + timedelta(hours=3)
        body = json.dumps(
            {"moscow_time": moscow.strftime("%Y-%m-%d %H:%M:%S MSK"), "timestamp": int(now)}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    with serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Moscow)) as base:
        yield base + "/"


def test_a_level_shorter_than_the_memory_period_still_has_its_reading(
    lab: config.LabConfig, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "LOAD_SAMPLE_S", 600.0)  # longer than any level here
    small = {"load_requests": 4, "concurrency": [1, 2], "idle_seconds": 0.01, "load_tool": "none"}
    server = lab.server.model_copy(update=small)
    ctx = RunContext(
        config=lab.model_copy(update={"server": server}),
        run_id="t",
        timeout_s=10,
        endpoints=fakes.NOWHERE,
    )
    reads = iter(range(1000, 10**6))
    meter = memory.Meter(lambda: next(reads), lambda: None, "a counter", "")
    service = memory.Service("server", "a local server", "python")
    record, serving = memory.measure_service(ctx, "native", url, service, 1, meter)
    assert (record.requests_sent, record.requests_ok, record.failure) == (9, 9, "")
    assert [level.requests for level in serving.levels] == [4, 4]
    # One reading as each level ended, after the idle ones.
    phases = [r.phase for r in record.readings]
    assert phases[-2:] == ["load", "load"] and set(phases[:-2]) == {"idle"}
    assert record.load_max_bytes() == record.readings[-1].bytes
