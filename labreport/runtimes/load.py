"""A bounded, checked HTTP load on loopback: labreport's own client, the same for every runtime,
beside a real load tool's (hey).

Every response body of labreport's client is checked by the lab's rules, as a CLI run's output
is. Each concurrent client is a thread with one keep-alive HTTP/1.1 connection (a new one after
an error or a `Connection: close`), sending until the level's count is issued or its time is up.

Load tools report status codes only, so they cannot tell a served answer from a wrong one; the
tool's figures (runtimes/hey.py) count beside the checked ones, not instead of them.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from labreport.record.models import ServingLevel
from labreport.runtimes.hey import REQUEST_TIMEOUT_S  # one request's limit, for both clients

CLIENT = (
    "labreport's own client: one thread and one keep-alive HTTP/1.1 connection per concurrent "
    "client, every body checked by the lab's rules"
)


@dataclass
class Outcome:
    """One request: its latency, and what was wrong with its answer ("" when it passed)."""

    latency_ns: int
    error: str


@dataclass
class _Shared:
    count: int
    deadline: float
    issued: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> bool:
        with self.lock:
            if self.issued >= self.count or time.monotonic() >= self.deadline:
                return False
            self.issued += 1
            return True


class Client:
    """Requests to one URL whose answers must be status 200 with a body check() accepts."""

    def __init__(self, url: str, check: Callable[[str], str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.check = check  # body -> "" when it passes, else why not

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT_S)

    def request(self, connection: http.client.HTTPConnection) -> tuple[Outcome, bool]:
        """One timed request on connection; also whether the connection can be used again."""
        started = time.perf_counter_ns()
        try:
            connection.request("GET", self.path)
            response = connection.getresponse()
            body = response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as error:
            elapsed = time.perf_counter_ns() - started
            return Outcome(elapsed, f"{type(error).__name__}: {error}"[:120]), False
        elapsed = time.perf_counter_ns() - started
        if response.status != 200:
            return Outcome(elapsed, f"HTTP {response.status}"), not response.will_close
        return Outcome(elapsed, self.check(body)), not response.will_close

    def one(self) -> Outcome:
        """A single request on a new connection (the cold request)."""
        connection = self.connect()
        try:
            return self.request(connection)[0]
        finally:
            connection.close()

    def level(self, concurrency: int, count: int, time_limit_s: float) -> ServingLevel:
        """count requests from concurrency clients at once, within time_limit_s."""
        shared = _Shared(count=count, deadline=time.monotonic() + time_limit_s)

        def client() -> None:
            connection = self.connect()
            try:
                while shared.take():
                    outcome, reusable = self.request(connection)
                    with shared.lock:
                        shared.outcomes.append(outcome)
                    if not reusable:
                        connection.close()
                        connection = self.connect()
            finally:
                connection.close()

        threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
        started = time.perf_counter_ns()
        for thread in threads:
            thread.start()
        for thread in threads:
            # Each request has its own timeout; this bounds the last ones in flight.
            thread.join(timeout=time_limit_s + REQUEST_TIMEOUT_S + 5)
        wall = time.perf_counter_ns() - started
        with shared.lock:
            outcomes = list(shared.outcomes)
        errors = Counter(o.error for o in outcomes if o.error)
        kept = dict(errors.most_common(5))
        if len(errors) > len(kept):
            kept["other errors"] = sum(errors.values()) - sum(kept.values())
        stopped = ""
        if len(outcomes) < count:
            stopped = f"time limit of {time_limit_s:g} s reached after {len(outcomes)} responses"
        return ServingLevel(
            concurrency=concurrency,
            requests=len(outcomes),
            ok=sum(1 for o in outcomes if not o.error),
            wall_ns=wall,
            latencies_ns=[o.latency_ns for o in outcomes],
            errors=kept,
            stopped=stopped,
        )
