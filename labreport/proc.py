"""The one way labreport runs a process: with a timeout, in its own process group.

On timeout or Ctrl-C the whole group is killed, so a hung `docker run` or `ctr run`
never outlives the command that started it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labreport.errors import LabreportError

STDERR_TAIL_CHARS = 600


@dataclass(frozen=True)
class Completed:
    """What a finished process left behind."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    wall_ns: int
    stdout_bytes: bytes = field(default=b"", repr=False)  # as written, for binary output

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


def tail(text: str, limit: int = STDERR_TAIL_CHARS) -> str:
    """The last part of a process's output, on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else "…" + flat[-limit:]


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def run(
    argv: Sequence[str],
    *,
    timeout_s: float,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    input_bytes: bytes | None = None,
    what: str | None = None,
    hint: str = "",
) -> Completed:
    """Run argv to completion and return its output.

    Raises LabreportError when the program is missing, times out, or (with check)
    exits non-zero; the message names the command and the tail of its stderr.
    """
    argv = tuple(str(part) for part in argv)
    label = what or shlex.join(argv)
    started = time.perf_counter_ns()
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    except FileNotFoundError as error:
        raise LabreportError(
            f"{argv[0]} not found (needed for: {label})",
            hint or "run scripts/setup, or check 'labreport doctor'",
        ) from error
    try:
        stdout, stderr = process.communicate(input_bytes, timeout=timeout_s)
    except subprocess.TimeoutExpired as error:
        _kill_group(process)
        raise LabreportError(
            f"{label} did not finish within {timeout_s:g} s and was killed",
            hint or "raise the timeout, or check what the command waits for",
        ) from error
    except BaseException:
        _kill_group(process)
        raise
    wall_ns = time.perf_counter_ns() - started
    done = Completed(
        argv=argv,
        returncode=process.returncode,
        stdout=stdout.decode("utf-8", "replace"),
        stderr=stderr.decode("utf-8", "replace"),
        wall_ns=wall_ns,
        stdout_bytes=stdout,
    )
    if check and done.returncode != 0:
        detail = tail(done.stderr or done.stdout) or "no output"
        raise LabreportError(f"{label} exited with {done.returncode}: {detail}", hint)
    return done


@contextlib.contextmanager
def background(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, stop_timeout_s: float = 10
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process (a server) that is stopped with its whole group on exit.

    SIGTERM first (the lab's server shuts down cleanly on it), SIGKILL if it lingers.
    """
    try:
        process = subprocess.Popen(
            [str(part) for part in argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
    except FileNotFoundError as error:
        raise LabreportError(f"{argv[0]} not found", "run scripts/setup") from error
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
        if process.stderr is not None:
            process.stderr.close()
