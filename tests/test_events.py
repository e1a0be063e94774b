"""containerd's events of a `ctr run --rm`, parsed and turned into phases of the client's run."""

from __future__ import annotations

import threading
import time

from labreport.host.containerd import EventLog, parse_event

LINE = (
    "2026-11-26 11:50:40.123456789 +0000 UTC labreport /tasks/create "
    '{"container_id":"labreport-x-runc-1","bundle":"/run/x","pid":42}'
)


def test_a_line_gives_the_container_the_topic_and_nanoseconds() -> None:
    container, topic, at = parse_event(LINE)  # type: ignore[misc]
    assert (container, topic) == ("labreport-x-runc-1", "/tasks/create")
    assert at == 1795693840 * 10**9 + 123456789
    delete = LINE.replace("/tasks/create", "/containers/delete").replace("container_id", "id")
    assert parse_event(delete) == ("labreport-x-runc-1", "/containers/delete", at)
    short = LINE.replace(".123456789", ".5")
    assert parse_event(short)[2] == 1795693840 * 10**9 + 500_000_000  # type: ignore[index]


def test_other_lines_are_ignored() -> None:
    for line in ("", "garbage", LINE.replace('{"', "{x"), LINE.replace("2026-11-26", "yesterday"),
                 LINE.replace('"labreport-x-runc-1"', "7")):  # fmt: skip
        assert parse_event(line) is None


class Stopped:
    def poll(self) -> int:
        return 0


def log_with(seen: dict[str, dict[str, int]]) -> EventLog:
    log = EventLog.__new__(EventLog)
    log.seen, log.lock, log.process = seen, threading.Lock(), Stopped()  # type: ignore[assignment]
    return log


def test_phases_run_from_spawn_to_return_in_the_clients_clock() -> None:
    started = time.perf_counter_ns()
    wall = started + (time.time_ns() - time.perf_counter_ns())  # the spawn, on the wall clock
    ms = 1_000_000
    seen = {
        "c": {
            "/tasks/create": wall + 50 * ms,
            "/tasks/start": wall + 53 * ms,
            "/tasks/exit": wall + 60 * ms,
        }
    }
    phases = dict(log_with(seen).phases("c", started, 100 * ms))
    assert list(phases) == ["task_create", "task_start", "task_run", "task_teardown"]
    assert sum(phases.values()) == 100 * ms
    assert abs(phases["task_create"] - 50 * ms) < 2 * ms  # the two clocks read a moment apart
    assert phases["task_start"] == 3 * ms and phases["task_run"] == 7 * ms
    assert "c" not in seen  # taken


def test_a_missing_or_misordered_event_gives_no_phases() -> None:
    now = time.time_ns()
    assert log_with({"c": {"/tasks/create": now, "/tasks/exit": now}}).phases("c", 0, 1) == []
    assert log_with({}).phases("c", 0, 1) == []
    backwards = {"/tasks/create": now, "/tasks/start": now - 10**9, "/tasks/exit": now}
    assert log_with({"c": backwards}).phases("c", time.perf_counter_ns(), 10**9) == []
