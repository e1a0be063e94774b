"""hey, the load tool beside labreport's checked client (runtimes/load.py).

Load tools such as wrk, hey or oha report status codes only, so they cannot tell a served answer
from a wrong one; their figures count beside the checked ones, not instead of them. hey, from
Debian, is the one used: like labreport's client it sends a fixed count at a fixed concurrency
over keep-alive connections, and with `-o csv` it writes every request's latency and status, so
its raw samples are stored and its percentiles computed at render time like the client's. wrk
runs for a duration and prints only its own summary; oha would be one more crates.io build.
"""

from __future__ import annotations

import csv
import io
import shlex
from dataclasses import dataclass
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host import paths, proc
from labreport.record.models import ToolLevel

REQUEST_TIMEOUT_S = 15  # hey -t: one request's limit, as labreport's client has


@dataclass(frozen=True)
class LoadTool:
    """hey, as found on this host."""

    path: str
    version: str

    @property
    def name(self) -> str:
        return f"hey {self.version}"

    def argv(self, url: str, concurrency: int, requests: int) -> list[str]:
        workers = workers_for(concurrency, requests)
        timeout = str(REQUEST_TIMEOUT_S)
        return [self.path, "-n", str(requests), "-c", str(workers), "-t", timeout, "-o", "csv", url]

    def command(self, url: str) -> str:
        """The command of every level, its count and concurrency as placeholders."""
        argv = self.argv(url, 2, 3)
        argv[2], argv[4] = "{requests}", "{concurrency}"
        return shlex.join(argv)

    def level(self, url: str, concurrency: int, requests: int, time_limit_s: float) -> ToolLevel:
        """requests from concurrency workers at once; killed past time_limit_s (and the slowest
        request's own timeout), when the level records why and nothing else."""
        sent = sent_by(concurrency, requests)
        try:
            done = proc.run(
                self.argv(url, concurrency, requests),
                timeout_s=time_limit_s + REQUEST_TIMEOUT_S + 5,
                what=f"hey at concurrency {concurrency}",
            )
        except LabreportError as error:
            return ToolLevel(concurrency=concurrency, requested=sent, failure=str(error))
        try:
            return parse_hey_csv(done.stdout, concurrency, sent)
        except ValueError as error:
            failure = f"hey's CSV could not be read: {error}"
            return ToolLevel(concurrency=concurrency, requested=sent, failure=failure)


def workers_for(concurrency: int, requests: int) -> int:
    """hey refuses fewer requests than workers."""
    return min(concurrency, requests)


def sent_by(concurrency: int, requests: int) -> int:
    """What `hey -n requests -c concurrency` sends: each worker sends requests // workers (seen
    here: -n 40 -c 32 sent 32), so up to one fewer per worker than asked."""
    workers = workers_for(concurrency, requests)
    return requests // workers * workers


HEY_COLUMNS = ("response-time", "status-code", "offset")


def parse_hey_csv(text: str, concurrency: int, requested: int) -> ToolLevel:
    """hey -o csv: one row per answered request, times in seconds (0.1 ms resolution); a request
    that got no answer has no row."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows and "response-time" not in text:
        raise ValueError("no header")
    latencies: list[int] = []
    statuses: dict[str, int] = {}
    span = 0.0
    for row in rows:
        if any(row.get(column) in (None, "") for column in HEY_COLUMNS):
            raise ValueError(f"a row without {', '.join(HEY_COLUMNS)}: {row}")
        seconds, offset = float(row["response-time"]), float(row["offset"])
        if not (0 <= seconds < 3600 and 0 <= offset < 3600):
            raise ValueError(f"a time out of range: {row}")
        latencies.append(round(seconds * 1e9))
        statuses[row["status-code"]] = statuses.get(row["status-code"], 0) + 1
        span = max(span, offset + seconds)
    if len(rows) > requested:
        raise ValueError(f"{len(rows)} rows for {requested} requests")
    return ToolLevel(
        concurrency=concurrency,
        requested=requested,
        latencies_ns=latencies,
        statuses=statuses,
        unanswered=requested - len(rows),
        span_ns=round(span * 1e9),
    )


def find_tool() -> LoadTool | str:
    """hey on this host, or why there is none."""
    found = paths.which("hey")
    if found is None:
        return "hey not on PATH (Debian's package hey; `labreport setup --packages` installs it)"
    return LoadTool(str(found), tool_version(found))


def tool_version(path: Path) -> str:
    """hey prints no version of its own: the Debian package's, where dpkg knows the file."""
    try:
        owner = proc.run(["dpkg-query", "-S", str(path)], timeout_s=10, check=False)
        package = owner.stdout.split(":", 1)[0].strip() if owner.returncode == 0 else ""
        if package:
            done = proc.run(
                ["dpkg-query", "-W", "-f=${Version}", package], timeout_s=10, check=False
            )
            if done.returncode == 0 and done.stdout.strip():
                return f"{done.stdout.strip()} (Debian)"
    except LabreportError:
        pass
    return "(version unknown)"
