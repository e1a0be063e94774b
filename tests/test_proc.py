from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labreport.errors import LabreportError
from labreport.host import proc

from .conftest import alive

Spawn = Callable[..., Any]


def test_captures_output_and_exit_code() -> None:
    done = proc.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout_s=10, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    assert done.wall_ns > 0


def test_non_zero_exit_names_command_and_stderr_tail() -> None:
    with pytest.raises(LabreportError) as raised:
        proc.run(["sh", "-c", "echo broken thing >&2; exit 7"], timeout_s=10, hint="do x")
    assert "exited with 7" in str(raised.value)
    assert "broken thing" in str(raised.value)
    assert raised.value.hint == "do x"


def test_missing_program_is_a_user_error() -> None:
    with pytest.raises(LabreportError, match="no-such-program-xyz not found"):
        proc.run(["no-such-program-xyz"], timeout_s=5)


def test_tail_is_one_line_and_bounded() -> None:
    text = "line\n" * 1000
    shortened = proc.tail(text, 50)
    assert "\n" not in shortened
    assert len(shortened) <= 51


# -- proc.timed: the spawn-to-reap clock of every timed sample --------------------------------


def test_timed_captures_output_exit_code_and_only_the_given_environment() -> None:
    done = proc.timed(
        ["/bin/sh", "-c", 'echo "out $MODE $HOME"; echo err >&2; exit 3'],
        env={"MODE": "once"},
        timeout_s=10,
    )
    assert (done.returncode, done.stdout, done.stderr) == (3, "out once \n", "err\n")
    assert done.wall_ns > 0


def test_timed_takes_output_larger_than_a_pipe_buffer() -> None:
    """Memory files, not pipes: a child writing megabytes never blocks on a full pipe."""
    done = proc.timed(["sh", "-c", "head -c 5000000 /dev/zero"], timeout_s=10)
    assert len(done.stdout_bytes) == 5_000_000


def test_timed_restores_default_sigpipe_in_the_child() -> None:
    # Python ignores SIGPIPE; a child that inherited that would see EPIPE instead of dying.
    done = proc.timed(["sh", "-c", "grep SigIgn /proc/self/status"], timeout_s=10)
    ignored = int(done.stdout.split()[1], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))


SPAWNERS = pytest.mark.parametrize("spawn", [proc.run, proc.timed], ids=["run", "timed"])


@SPAWNERS
def test_timeout_kills_the_whole_process_group(tmp_path: Path, spawn: Spawn) -> None:
    with pytest.raises(LabreportError, match="no-such-program-xyz not found"):
        spawn(["no-such-program-xyz"], timeout_s=5)
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(LabreportError, match=r"did not finish within 0\.5 s and was killed"):
        spawn(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], timeout_s=0.5)
    assert time.monotonic() - started < 10
    time.sleep(0.2)
    assert not alive(int(pid_file.read_text()))


@SPAWNERS
def test_ctrl_c_kills_the_child(tmp_path: Path, spawn: Spawn) -> None:
    """KeyboardInterrupt while waiting must not leave the process running."""
    pid_file = tmp_path / "pid"
    previous = signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            spawn(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"], timeout_s=30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    time.sleep(0.2)
    assert not alive(int(pid_file.read_text()))


@SPAWNERS
def test_an_interrupt_during_the_spawn_kills_the_child(
    monkeypatch: pytest.MonkeyPatch, spawn: Spawn
) -> None:
    """Ctrl-C after the fork, before the spawner holds its child (inside Popen, or as
    posix_spawn returns): held until the child is known, then the child is killed with its
    group and the interrupt goes on. (Before, a `go build` outlived a SIGTERM that came then.)"""
    started: list[int] = []
    real_popen, real_spawn = subprocess.Popen, os.posix_spawn

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        child = real_popen(*args, **kwargs)
        started.append(child.pid)
        os.kill(os.getpid(), signal.SIGINT)
        return child

    def posix_spawn(*args: Any, **kwargs: Any) -> int:
        pid = real_spawn(*args, **kwargs)
        started.append(pid)
        os.kill(os.getpid(), signal.SIGINT)
        return pid

    monkeypatch.setattr(subprocess, "Popen", popen)
    monkeypatch.setattr(os, "posix_spawn", posix_spawn)
    with pytest.raises(KeyboardInterrupt):
        spawn(["sleep", "60"], timeout_s=30)
    assert len(started) == 1 and not alive(started[0])
