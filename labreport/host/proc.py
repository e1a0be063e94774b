"""The one way labreport runs a process: with a timeout, in its own process group.

On timeout or Ctrl-C the whole group is killed, so a hung `docker run` or `ctr run`
never outlives the command that started it.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from labreport.errors import LabreportError

STDERR_TAIL_CHARS = 600
HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}  # Ctrl-C, and a CI cancel or `timeout`


@dataclass(frozen=True)
class Completed:
    """What a finished process left behind."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    wall_ns: int
    stdout_bytes: bytes = field(default=b"", repr=False)  # as written, for binary output
    started_ns: int = 0  # timed(): CLOCK_MONOTONIC (perf_counter_ns) just before the spawn

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block ends (a few renames, a spawn), then take effect:
    their handlers are swapped for one that notes them (Python runs handlers in the main thread
    whichever thread the kernel picked, so this holds where a signal mask would not)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[signal.Signals] = []
    previous = {
        number: signal.signal(number, lambda n, _: caught.append(signal.Signals(n)))
        for number in HELD_SIGNALS
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for first in caught[:1]:  # the first one, as it would have acted
            handler = previous[first]
            if callable(handler):
                handler(first, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), first)


def tail(text: str, limit: int = STDERR_TAIL_CHARS) -> str:
    """The last part of a process's output, on one line."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else "…" + flat[-limit:]


def command_lines() -> Iterator[tuple[int, list[bytes]]]:
    """Every process on the host with its argv (read from /proc; one that ends meanwhile, or
    that this user may not read, is left out)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parts = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            yield int(entry.name), parts[:-1] if parts[-1] == b"" else parts


GROUP_GONE_TIMEOUT_S = 10  # a killed group's processes end at once, unless the kernel holds them


def _group_gone(pgid: int, timeout_s: float = GROUP_GONE_TIMEOUT_S) -> None:
    """Until no process of the group is left (the leader reaped, its children reaped by init),
    so that a killed build no longer writes in the folders its caller removes next."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        except PermissionError:  # a member changed its user (sudo): still there
            pass
        time.sleep(0.01)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=GROUP_GONE_TIMEOUT_S)
    _group_gone(process.pid)


def spawn(argv: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """subprocess.Popen, but never an orphan: a Ctrl-C or SIGTERM that comes while Popen runs
    (after the fork, before Popen returns the child) is held until the child is known; then the
    child is killed with its group, and the interrupt goes on. Without this the interrupt left
    a `go build` running after labreport had exited. The child must lead a session of its own
    (start_new_session=True), as every child of labreport's does."""
    process: subprocess.Popen[bytes] | None = None
    try:
        with signals_held():
            process = subprocess.Popen([str(part) for part in argv], **popen)
    except BaseException:
        if process is not None:
            _kill_group(process)
        raise
    return process


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
        process = spawn(
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
            hint or "run `labreport setup`, or check 'labreport doctor'",
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
        started_ns=started,
    )
    if check and done.returncode != 0:
        detail = tail(done.stderr or done.stdout) or "no output"
        raise LabreportError(f"{label} exited with {done.returncode}: {detail}", hint)
    return done


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _reap(pid: int, pidfd: int, timeout_s: float) -> int | None:
    """Wait for the child to end; its wait status, or None when timeout_s passed first."""
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    deadline = time.monotonic() + timeout_s
    while True:
        remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
        if poller.poll(remaining_ms):
            return os.waitpid(pid, 0)[1]
        if time.monotonic() >= deadline:
            return None


def timed(
    argv: Sequence[str],
    *,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    what: str | None = None,
    hint: str = "",
) -> Completed:
    """One timed run, spawn to reap, with as little of labreport in the clock as possible.

    The clock starts just before posix_spawn (glibc spawns with vfork semantics, no copy of this
    process) and stops when waitpid has reaped the child. stdout and stderr go to memory files,
    not pipes, so nothing has to drain them while the clock runs; they are read afterwards, and
    the caller checks the output after the clock has stopped. The child runs in a session of its
    own and is killed with its group on timeout or Ctrl-C. The exit code is not checked.
    """
    argv = tuple(str(part) for part in argv)
    label = what or shlex.join(argv)
    program = argv[0] if "/" in argv[0] else shutil.which(argv[0])
    if program is None:
        raise LabreportError(
            f"{argv[0]} not found (needed for: {label})",
            hint or "run `labreport setup`, or check 'labreport doctor'",
        )
    out = os.memfd_create("labreport-stdout", os.MFD_CLOEXEC)
    err = os.memfd_create("labreport-stderr", os.MFD_CLOEXEC)
    try:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out, 1),
            (os.POSIX_SPAWN_DUP2, err, 2),
        ]
        child_env = dict(os.environ if env is None else env)
        pid = started = 0
        try:
            # An interrupt during the spawn acts once the child is known (swapping the handlers
            # back after it costs the clock about a microsecond, the same on every runtime).
            with signals_held():
                started = time.perf_counter_ns()
                try:
                    # Python ignores SIGPIPE and SIGXFSZ; the child gets the defaults back.
                    pid = os.posix_spawn(
                        program,
                        list(argv),
                        child_env,
                        file_actions=actions,
                        setsid=True,
                        setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
                    )
                except OSError as error:
                    raise LabreportError(
                        f"{label}: could not start {program}: {error.strerror}",
                        hint or "check that the program exists and is executable",
                    ) from error
            pidfd = os.pidfd_open(pid)
            try:
                status = _reap(pid, pidfd, timeout_s)
            finally:
                os.close(pidfd)
        except BaseException:
            if pid:
                _kill_pid_group(pid)
            raise
        wall_ns = time.perf_counter_ns() - started
        if status is None:
            _kill_pid_group(pid)
            raise LabreportError(
                f"{label} did not finish within {timeout_s:g} s and was killed",
                hint or "raise the timeout, or check what the command waits for",
            )
        stdout = _read_all(out)
        stderr = _read_all(err)
    finally:
        os.close(out)
        os.close(err)
    return Completed(
        argv=argv,
        returncode=os.waitstatus_to_exitcode(status),
        stdout=stdout.decode("utf-8", "replace"),
        stderr=stderr.decode("utf-8", "replace"),
        wall_ns=wall_ns,
        stdout_bytes=stdout,
        started_ns=started,
    )


def _kill_pid_group(pid: int) -> None:
    """Kill a spawned child's whole group and reap the child (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    _group_gone(pid)


@contextlib.contextmanager
def background(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    stop_timeout_s: float = 10,
    stdout: int = subprocess.DEVNULL,
    stderr: int | IO[bytes] = subprocess.PIPE,
) -> Iterator[subprocess.Popen[bytes]]:
    """A long-running process (a server, an event stream) stopped with its whole group on exit.

    SIGTERM first (the lab's server shuts down cleanly on it), SIGKILL if it lingers.
    """
    try:
        process = spawn(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=None if env is None else dict(env),
            start_new_session=True,
        )
    except FileNotFoundError as error:
        raise LabreportError(f"{argv[0]} not found", "run `labreport setup`") from error
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def split_run(
    marks: Sequence[tuple[str, int]], started_ns: int, wall_ns: int, last: str
) -> list[tuple[str, int]]:
    """A timed run from its spawn (started_ns) to the client's return, split at marks in the
    client's clock: each phase ends at its mark, the last one (named `last`) at the return.
    Marks out of order, or past the return (clocks that disagree), give []."""
    phases: list[tuple[str, int]] = []
    before = started_ns
    for name, at in [*marks, (last, started_ns + wall_ns)]:
        if at < before:
            return []
        phases.append((name, at - before))
        before = at
    return phases
