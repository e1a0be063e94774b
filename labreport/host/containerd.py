"""containerd through `ctr`, in labreport's own namespace, with a timeout on every call.

Everything a run creates here (images, containers, tasks, their snapshots) is named
`labreport-<run id>-...` or imported under a name with the run id, so that cleanup finds it on
every path out and never touches anything of a user's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host import cgroup, fsutil, paths, proc
from labreport.host.endpoints import CONTAINERD_NAMESPACE, ContainerdEndpoint

CALL_TIMEOUT_S = 60
IMPORT_TIMEOUT_S = 300
KILL_TIMEOUT_S = 15
# A runtime v2 task's bundle lives in <containerd state>/io.containerd.runtime.v2.task/<ns>/<id>.
TASK_STATE = "io.containerd.runtime.v2.task"


@dataclass(frozen=True)
class Ctr:
    """One containerd (socket) and one namespace."""

    ctr: Path
    socket: Path
    namespace: str = CONTAINERD_NAMESPACE

    @classmethod
    def find(cls, endpoint: ContainerdEndpoint) -> Ctr:
        """ctr on the given containerd."""
        ctr = paths.which("ctr")
        if ctr is None:
            raise LabreportError(
                "ctr is not on PATH", "run `labreport setup --packages` (Debian's containerd)"
            )
        if endpoint.needs_root:
            raise LabreportError(f"{paths.NEEDS_ROOT}: {endpoint.source}", paths.NEEDS_ROOT_HINT)
        if endpoint.socket is None:
            raise LabreportError(
                "no containerd socket found",
                "start Docker (it runs containerd) or set LABREPORT_CONTAINERD_SOCKET",
            )
        return cls(ctr, endpoint.socket)

    def argv(self, *args: str) -> list[str]:
        return [str(self.ctr), "--address", str(self.socket), "--namespace", self.namespace, *args]

    @staticmethod
    def shown(argv: list[str]) -> str:
        """An argv from argv() as a user would type it: `ctr`, not its full path."""
        return shlex.join(["ctr", *argv[1:]])

    def call(self, *args: str, timeout_s: float = CALL_TIMEOUT_S, check: bool = True) -> str:
        done = proc.run(
            self.argv(*args),
            timeout_s=timeout_s,
            check=check,
            what=f"ctr {args[0]} {args[1] if len(args) > 1 else ''}".strip(),
            hint="run 'labreport doctor' to check containerd",
        )
        return done.stdout

    def version(self, timeout_s: float = 20) -> str:
        """The server's version; raises when no containerd answers on the socket."""
        out = self.call("version", timeout_s=timeout_s)
        server = out.partition("Server:")[2]
        for line in server.splitlines():
            if line.strip().startswith("Version:"):
                return line.split(":", 1)[1].strip()
        return "unknown"

    def import_archive(self, archive: Path, platform: str, index_name: str | None = None) -> None:
        args = ["images", "import", "--platform", platform]
        if index_name:
            args += ["--index-name", index_name]
        self.call(*args, str(archive), timeout_s=IMPORT_TIMEOUT_S)

    def image_names(self) -> list[str]:
        return [line.strip() for line in self.call("images", "ls", "-q").splitlines() if line]

    def remove_images(self, names: Sequence[str]) -> None:
        if names:
            # --sync: wait for the content and snapshot garbage collection, not just the name.
            self.call("images", "rm", "--sync", *names, timeout_s=IMPORT_TIMEOUT_S, check=False)

    def content(self) -> dict[str, list[str]]:
        """Every blob in the namespace: digest -> its labels (`key=value`)."""
        blobs = {}
        for line in self.call("content", "ls").splitlines()[1:]:
            fields = line.split()  # DIGEST SIZE AGE LABELS; AGE holds spaces, LABELS none
            if fields:
                blobs[fields[0]] = fields[-1].split(",") if len(fields) >= 4 else []
        return blobs

    def container_ids(self) -> list[str]:
        return [line.strip() for line in self.call("containers", "ls", "-q").splitlines() if line]

    def task_ids(self) -> list[str]:
        lines = self.call("tasks", "ls").splitlines()[1:]
        return [line.split()[0] for line in lines if line.strip()]

    def snapshot_keys(self) -> list[str]:
        lines = self.call("snapshots", "ls").splitlines()[1:]
        return [line.split()[0] for line in lines if line.strip()]

    def remove_container(self, container_id: str) -> None:
        """Kill and delete its task, then the container (and its snapshot); no error if gone.

        A hung shim can make `ctr tasks delete` hang too, so after a timeout its shim process
        is killed and the delete tried once more.
        """
        if container_id in self.task_ids():
            self.call(
                "tasks",
                "kill",
                "--signal",
                "SIGKILL",
                container_id,
                timeout_s=KILL_TIMEOUT_S,
                check=False,
            )
            delete = ("tasks", "delete", "--force", container_id)
            try:
                self.call(*delete, timeout_s=KILL_TIMEOUT_S, check=False)
            except LabreportError:
                kill_shims(self.namespace, container_id)
                self.call(*delete, timeout_s=KILL_TIMEOUT_S, check=False)
        if container_id in self.container_ids():
            self.call("containers", "delete", container_id, check=False)

    def sweep(self, prefix: str, image_names: Sequence[str] = ()) -> None:
        """Remove every container named with prefix, then snapshots keyed with it, then the
        given images (whose removal lets containerd collect the layers under them).

        A `ctr run` killed after it prepared the rootfs snapshot (keyed by the container id)
        but before it created the container leaves that snapshot alone: no container leads to it.
        """
        for container_id in self.container_ids():
            if container_id.startswith(prefix):
                self.remove_container(container_id)
        orphans = [key for key in self.snapshot_keys() if key.startswith(prefix)]
        if orphans:
            self.call("snapshots", "rm", *orphans, check=False)
        present = set(self.image_names())
        self.remove_images([name for name in image_names if name in present])
        self.remove_orphan_shims(prefix)

    def task_state_dirs(self) -> list[Path]:
        """Where this containerd keeps its tasks' bundles for the namespace: Docker's layout
        (<socket dir>/daemon), the system's (<socket dir>) or labreport's private one
        (<socket dir>/state)."""
        folder = self.socket.parent
        candidates = (folder / "daemon", folder, folder / "state")
        return [c / TASK_STATE / self.namespace for c in candidates if (c / TASK_STATE).is_dir()]

    def remove_orphan_shims(self, prefix: str) -> None:
        """Shims and bundles of containers named with prefix that containerd no longer knows.

        When `ctr run` is killed while containerd creates its task (Ctrl-C), containerd can
        forget the task while its shim lives on (parent 1, for good) with its bundle on disk
        (containerd/containerd#7733); the API then shows nothing. Such a shim's container
        processes are killed first, then the shim, then its bundle is removed (its rootfs
        unmounted first). Only shims of this containerd (-address) and namespace are touched.
        """
        known = set(self.task_ids())
        for shim in shim_processes(self.namespace, prefix, self.socket):
            if shim.container_id not in known:
                shim.kill()
        for folder in self.task_state_dirs():
            for bundle in sorted(folder.glob(f"{glob_escape(prefix)}*")):
                if bundle.name not in known and bundle.is_dir():
                    remove_bundle(bundle)

    def remove_namespace_if_empty(self) -> None:
        """The namespace, and the cgroups `ctr run` made for it (/<namespace>/<id> in every
        hierarchy), once empty: containerd refuses while anything is left in the namespace and
        the kernel while a cgroup holds a process; then they are not ours alone to remove."""
        with contextlib.suppress(LabreportError):
            self.call("namespaces", "remove", self.namespace, check=False, timeout_s=20)
            if self.namespace not in self.call("namespaces", "ls", "-q", check=False).split():
                cgroup.remove_cgroups(self.namespace)
                for folder in self.task_state_dirs():  # the namespace's empty bundle folder
                    with contextlib.suppress(OSError):
                        folder.rmdir()


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _flag(argv: list[str], name: str) -> str | None:
    with contextlib.suppress(ValueError, IndexError):
        return argv[argv.index(name) + 1]
    return None


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists():
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True  # a zombie: dead, its parent (init) reaps it
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def kill_tree(pid: int) -> None:
    """SIGKILL a process's descendants (deepest first), then it; wait until it is gone."""
    tree, todo = [], [pid]
    while todo:
        children = _children(todo.pop())
        tree += children
        todo += children
    for each in [*reversed(tree), pid]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(each, signal.SIGKILL)
    _gone(pid, KILL_TIMEOUT_S)


@dataclass(frozen=True)
class ShimProcess:
    """A containerd shim process, found by its command line."""

    pid: int
    namespace: str
    container_id: str
    address: str  # the containerd socket it serves

    def kill(self) -> None:
        """SIGKILL its descendants (the container's processes), then itself."""
        kill_tree(self.pid)


def shim_processes(
    namespace: str, prefix: str = "", socket: Path | None = None
) -> list[ShimProcess]:
    """Shims serving containers of namespace whose id starts with prefix (of the containerd
    at socket, when given)."""
    found = []
    for pid, raw in proc.command_lines():
        argv = [part.decode(errors="replace") for part in raw]
        if not argv or not argv[0].rsplit("/", 1)[-1].startswith("containerd-shim"):
            continue
        container_id, address = _flag(argv, "-id"), _flag(argv, "-address") or ""
        if (
            _flag(argv, "-namespace") == namespace
            and container_id is not None
            and container_id.startswith(prefix)
            and (socket is None or Path(address.removeprefix("unix://")) == socket)
        ):
            found.append(ShimProcess(pid, namespace, container_id, address))
    return found


def remove_bundle(bundle: Path) -> None:
    """A task bundle containerd forgot: its mounts detached, then the folder and the work
    folder its `work` link names (both containerd's, both named by the container id)."""
    for point in fsutil.mounts_under(bundle):
        fsutil.unmount(point)
    work = bundle / "work"
    if work.is_symlink():
        target = Path(os.readlink(work))
        if target.name == bundle.name and target.parent.name == bundle.parent.name:
            shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(bundle, ignore_errors=True)


def kill_shims(namespace: str, container_id: str) -> None:
    """SIGKILL the shim that serves this container, and its container's processes."""
    for shim in shim_processes(namespace, container_id):
        if shim.container_id == container_id:
            shim.kill()


# -- containerd's own record of a task: `ctr events` ---------------------------------------------

# The phases of a `ctr run --rm` as containerd's events split it, each ending at the event named.
TASK_PHASES = (
    ("task_create", "/tasks/create"),  # spawn: ctr, container and snapshot, shim, task created
    ("task_start", "/tasks/start"),  # the task's process started
    ("task_run", "/tasks/exit"),  # the program ran and exited
)


def parse_event(line: str) -> tuple[str, str, int] | None:
    """(container id, topic, wall-clock ns) of one `ctr events` line, None for other lines.

    A line is `2026-11-26 11:50:40.123456789 +0000 UTC <namespace> <topic> <json>`.
    """
    fields = line.split(" ", 6)
    if len(fields) != 7 or not fields[5].startswith("/"):
        return None
    day, clock, offset, _zone, _namespace, topic, payload = fields
    whole, _, fraction = clock.partition(".")
    try:
        base = datetime.strptime(f"{day} {whole} {offset}", "%Y-%m-%d %H:%M:%S %z")
        event = json.loads(payload)
    except ValueError:
        return None
    container = event.get("container_id") or event.get("id") if isinstance(event, dict) else None
    if not isinstance(container, str):
        return None
    return container, topic, int(base.timestamp()) * 10**9 + int((fraction + "0" * 9)[:9])


class EventLog:
    """`ctr events` read in the background: when containerd saw each container's task created,
    started and exited (wall clock), turned into phases of a timed run (client's clock)."""

    def __init__(self, ctr: Ctr, undo: contextlib.ExitStack) -> None:
        self.seen: dict[str, dict[str, int]] = {}
        self.lock = threading.Lock()
        self.process = undo.enter_context(
            proc.background(ctr.argv("events"), stdout=subprocess.PIPE, stop_timeout_s=5)
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for raw in self.process.stdout:
                parsed = parse_event(raw.decode("utf-8", "replace").rstrip("\n"))
                if parsed is not None:
                    container, topic, at = parsed
                    with self.lock:
                        self.seen.setdefault(container, {})[topic] = at

    def phases(self, container: str, started_ns: int, wall_ns: int) -> list[tuple[str, int]]:
        """The run's phases from spawn to the client's return; [] if an event is missing or
        out of order (the events arrive within milliseconds; wait that long at most)."""
        deadline = time.monotonic() + 0.5
        while True:
            with self.lock:
                exited = "/tasks/exit" in self.seen.get(container, {})
                times = self.seen.pop(container, {}) if exited else {}
            if times or time.monotonic() > deadline or self.process.poll() is not None:
                break
            time.sleep(0.005)
        offset = time.time_ns() - time.perf_counter_ns()  # wall clock minus the client's clock
        if any(topic not in times for _, topic in TASK_PHASES):
            return []
        marks = [(name, times[topic] - offset) for name, topic in TASK_PHASES]
        return proc.split_run(marks, started_ns, wall_ns, "task_teardown")
