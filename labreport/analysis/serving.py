"""Serving, computed at render time from the raw latencies: each level's rate and percentiles,
the load tool's beside them, and whether a service answered every checked request."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from labreport.record.models import ServingRecord


@dataclass(frozen=True)
class ServingLevelView:
    """One concurrency level, computed at render time from the raw latencies."""

    concurrency: int
    requests: int
    ok: int
    per_second: float  # checked responses per second of the level's wall time
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    errors: dict[str, int]
    stopped: str


@dataclass(frozen=True)
class ToolLevelView:
    """The load tool's level at one concurrency: status codes only, no body checked."""

    concurrency: int
    requested: int
    ok: int  # answered with status 200
    other: int  # answered with another status, or not at all
    per_second: float  # status-200 answers per second of the tool's span
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    failure: str


@dataclass(frozen=True)
class ServingView:
    # What a template may call (report/sandbox.py allows nothing else).
    TEMPLATE_CALLS: ClassVar[frozenset[str]] = frozenset({"level", "tool_level", "tool_pace"})
    record: ServingRecord
    levels: list[ServingLevelView]
    tool_levels: list[ToolLevelView]

    @property
    def runtime(self) -> str:
        return self.record.runtime

    @property
    def label(self) -> str:
        """The runtime, and how it served where one runtime served two ways (native)."""
        return self.record.runtime if self.record.model != "cgi" else f"{self.record.runtime} (CGI)"

    @property
    def ok(self) -> bool:
        return not self.record.failure and all(level.ok == level.requests for level in self.levels)

    def level(self, concurrency: int) -> ServingLevelView | None:
        return next((v for v in self.levels if v.concurrency == concurrency), None)

    def tool_level(self, concurrency: int) -> ToolLevelView | None:
        return next((v for v in self.tool_levels if v.concurrency == concurrency), None)

    def tool_pace(self, concurrency: int) -> float | None:
        """The load tool's rate over the checked client's at one concurrency, where both served
        every request: well above 1, the client, not the service, set the checked level's pace."""
        level, tool = self.level(concurrency), self.tool_level(concurrency)
        if not (level and tool and level.per_second and tool.per_second):
            return None
        if level.ok < level.requests or tool.other:
            return None
        return tool.per_second / level.per_second


def percentile_ms(latencies_ns: Sequence[int], q: float) -> float | None:
    """The q-th percentile (nearest rank, so always an observed latency), in ms."""
    if not latencies_ns:
        return None
    ordered = sorted(latencies_ns)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1] / 1e6


def serving_view(record: ServingRecord) -> ServingView:
    levels = [
        ServingLevelView(
            concurrency=level.concurrency,
            requests=level.requests,
            ok=level.ok,
            per_second=level.ok / (level.wall_ns / 1e9) if level.wall_ns else 0.0,
            p50_ms=percentile_ms(level.latencies_ns, 50),
            p90_ms=percentile_ms(level.latencies_ns, 90),
            p99_ms=percentile_ms(level.latencies_ns, 99),
            errors=dict(level.errors),
            stopped=level.stopped,
        )
        for level in record.levels
    ]
    tool_levels = []
    for tool in record.tool_levels:
        ok = tool.statuses.get("200", 0)
        tool_levels.append(
            ToolLevelView(
                concurrency=tool.concurrency,
                requested=tool.requested,
                ok=ok,
                other=tool.requested - ok,
                per_second=ok / (tool.span_ns / 1e9) if tool.span_ns else 0.0,
                p50_ms=percentile_ms(tool.latencies_ns, 50),
                p90_ms=percentile_ms(tool.latencies_ns, 90),
                p99_ms=percentile_ms(tool.latencies_ns, 99),
                failure=tool.failure,
            )
        )
    return ServingView(record, levels, tool_levels)
