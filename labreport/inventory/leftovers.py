"""What labreport leaves on a host: what it keeps on purpose, and anything else (a leak).

`labreport clean --check` (the test command's last step) lists both and fails on a leak;
`labreport clean` removes both. One list of what to look at, used by both, so that what the
audit checks is what clean removes:

- processes whose command line names labreport's containerd namespace (shims), its run ids
  (labreport-<10 hex>-...) or its state directory (the private engine and containerd);
- task bundles under every containerd's runtime state, mounts under them or the state directory;
- the private engine's bridge (and veths on it), and the cgroups labreport's runs made;
- on the Docker engine: containers, volumes and images with labreport's label, beyond the
  images it keeps (the Go builder, the stage cache, what `labreport build` tagged :latest);
- anything in labreport's namespace of the engine's containerd;
- the wasmtime shims' cache entries and phase records (every run removes its own).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from labreport.errors import LabreportError
from labreport.host import (
    cgroup,
    containerd,
    engine,
    fsutil,
    paths,
    private_containerd,
    proc,
    shim_cache,
)
from labreport.host.endpoints import (
    CONTAINERD_NAMESPACE,
    ENGINE_CONTAINERD_SOCKETS,
    ContainerdEndpoint,
    Endpoints,
    EngineEndpoint,
)
from labreport.host.engine_layout import layout as engine_layout

RUN_ID = re.compile(rb"labreport-[0-9a-f]{10}-")
# A shim's `-namespace labreport`, a ctr client's `--namespace labreport`.
NAMESPACE_FLAGS = (b"\0-namespace\0", b"\0--namespace\0", b"\0-n\0")
# Images labreport keeps on an engine, by repository: caches a later run reuses, and the image
# `labreport build` leaves for the user (tagged :latest).
KEPT_REPOSITORIES = ("labreport/go-builder", "labreport/stage-cache")
NET = Path("/sys/class/net")
NETNS = Path("/run/netns")
PREFIX = "labreport"  # of every link, network namespace and cgroup labreport (or a test) makes


@dataclass(frozen=True)
class Item:
    kind: (
        str  # process, bundle, mount, network, cgroup, container, volume, image, containerd, cache
    )
    what: str  # one line a user can act on
    kept: bool = False  # kept on purpose (a cache, a user's build): listed, not a leak
    remove: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)

    def line(self) -> str:
        return f"{self.kind}: {self.what}"


def _ancestors() -> set[int]:
    """This process and its parents (the shell or pytest that started the audit)."""
    found, pid = set(), os.getpid()
    while pid > 1:
        found.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


def processes() -> Iterator[Item]:
    state = str(paths.state_dir()).encode()
    namespaces = [flag + CONTAINERD_NAMESPACE.encode() + b"\0" for flag in NAMESPACE_FLAGS]
    mine = _ancestors()
    for pid, parts in proc.command_lines():
        argv = b"\0".join(parts)
        padded = b"\0" + argv + b"\0"
        if pid in mine:
            continue
        if any(n in padded for n in namespaces) or RUN_ID.search(argv) or state in argv:
            shown = argv.replace(b"\0", b" ").decode(errors="replace").strip()[:160]
            yield Item(
                "process",
                f"pid {pid}: {shown}",
                remove=functools.partial(containerd.kill_tree, pid),
            )


def _containerd_sockets() -> list[Path]:
    sockets = [*ENGINE_CONTAINERD_SOCKETS, private_containerd.socket_path()]
    with contextlib.suppress(LabreportError):
        sockets.append(engine_layout().containerd_socket)
    return list(dict.fromkeys(sockets))


def _ctr(socket: Path) -> containerd.Ctr | None:
    program = paths.which("ctr")
    return containerd.Ctr(program, socket) if program else None


def bundles() -> Iterator[Item]:
    for socket in _containerd_sockets():
        ctr = _ctr(socket)
        if ctr is None:
            continue
        try:
            found = [
                bundle
                for folder in ctr.task_state_dirs()
                if folder.is_dir()
                for bundle in sorted(folder.iterdir())
            ]
        except PermissionError:  # root's alone: this user runs no ctr task, so left none there
            yield Item("bundle", f"{socket.parent}: not checked ({paths.NEEDS_ROOT})", kept=True)
            continue
        for bundle in found:
            yield Item(
                "bundle",
                f"{bundle} (a task containerd no longer runs)",
                remove=functools.partial(containerd.remove_bundle, bundle),
            )


def mounts() -> Iterator[Item]:
    marker = f"/{containerd.TASK_STATE}/{CONTAINERD_NAMESPACE}/"
    for point in fsutil.mounts_under(Path("/")):
        if point.startswith(f"{paths.state_dir()}/") or marker in point:
            yield Item("mount", point, remove=functools.partial(fsutil.unmount, point))


def network() -> Iterator[Item]:
    """The private engine's bridge (with the veths on it), and any link or named network
    namespace whose name starts with labreport (the tests' remote engine has both)."""
    for link in sorted(NET.glob(f"{PREFIX}*")):
        on_it = [p.parent.name for p in NET.glob("*/master") if p.resolve().name == link.name]
        shown = f"link {link.name}" + (f" with {', '.join(on_it)} on it" if on_it else "")
        yield Item("network", shown, remove=functools.partial(_ip, "link", "delete", link.name))
    for namespace in sorted(NETNS.glob(f"{PREFIX}*")):
        yield Item(
            "network",
            f"network namespace {namespace.name}",
            remove=functools.partial(_ip, "netns", "delete", namespace.name),
        )


def _ip(*args: str) -> None:
    proc.run(["ip", *args], timeout_s=30, check=False)


def cgroups() -> Iterator[Item]:
    """cgroups named labreport* at the top of any hierarchy: a ctr run's (/labreport/<id>),
    the private engine's cgroup parent (/labreport-engine), the tests' remote engine's."""
    found: dict[str, list[Path]] = {}
    for path in [*cgroup.CGROUP_ROOT.glob(f"*/{PREFIX}*"), *cgroup.CGROUP_ROOT.glob(f"{PREFIX}*")]:
        if path.is_dir():
            found.setdefault(path.name, []).append(path)
    for name, where in sorted(found.items()):
        yield Item(
            "cgroup",
            f"{name} in {len(where)} hierarchy(ies), e.g. {where[0]}",
            remove=functools.partial(cgroup.remove_cgroups, name),
        )


def _remove(url: str, collection: str, name: str, **options: bool) -> None:
    """Remove one object from the engine, on a client of its own (found ones are listed first,
    removed later)."""
    client = engine.connect(timeout_s=120, url=url)
    try:
        if collection == "images":
            client.images.remove(name, **options)
            # On the containerd image store its untagged parents stay: labreport's go too.
            engine.remove_build_leftovers(client)
        else:
            getattr(client, collection).get(name).remove(**options)
    finally:
        client.close()


def engine_objects(endpoint: EngineEndpoint) -> Iterator[Item]:
    """labreport's on the engine: labelled containers and volumes (leaks) and images."""
    label = f"{engine.LABEL_MANAGED}=true"
    url = endpoint.url
    try:
        client = engine.connect(timeout_s=30, url=url)
    except LabreportError:
        return
    try:
        # The low-level list: no inspect of a container that may vanish meanwhile.
        for container in client.api.containers(all=True, filters={"label": label}):
            name = str((container.get("Names") or [container["Id"]])[0]).lstrip("/")
            yield Item(
                "container",
                f"{name} on the Docker engine",
                remove=functools.partial(
                    _remove, url, "containers", str(container["Id"]), force=True
                ),
            )
        for volume in client.volumes.list(filters={"label": label}):
            yield Item(
                "volume",
                volume.name,
                remove=functools.partial(_remove, url, "volumes", volume.name or "", force=True),
            )
        for image in client.images.list(filters={"label": label}):
            tags = list(image.tags)
            size = f"{(image.attrs.get('Size') or 0) / 2**20:,.0f} MiB"
            if not tags:
                yield Item(
                    "image",
                    f"{image.short_id} (untagged, {size})",
                    remove=functools.partial(_remove, url, "images", image.id or "", force=True),
                )
            for tag in tags:
                kept = ":run-" not in tag and (
                    tag.startswith(KEPT_REPOSITORIES) or tag.endswith(":latest")
                )
                yield Item(
                    "image",
                    f"{tag} ({size})" + (", a cache or your build" if kept else ""),
                    kept=kept,
                    remove=functools.partial(_remove, url, "images", tag, noprune=False),
                )
    finally:
        client.close()


def containerd_namespace(endpoint: ContainerdEndpoint) -> Iterator[Item]:
    socket = endpoint.socket
    ctr = _ctr(socket) if socket else None
    if ctr is None:
        return
    try:
        if CONTAINERD_NAMESPACE not in ctr.call("namespaces", "ls", "-q").split():
            return
        held = {
            "containers": ctr.container_ids(),
            "images": ctr.image_names(),
            "snapshots": ctr.snapshot_keys(),
            "content": sorted(ctr.content()),
        }
    except LabreportError:
        return
    shown = ", ".join(f"{len(v)} {k}" for k, v in held.items() if v) or "empty"

    def remove() -> None:
        ctr.sweep("", held["images"])
        for digest in ctr.content():
            ctr.call("content", "rm", digest, check=False)
        ctr.remove_namespace_if_empty()

    yield Item(
        "containerd", f"namespace {CONTAINERD_NAMESPACE} at {socket}: {shown}", remove=remove
    )


def cgi_scratch() -> Iterator[Item]:
    """Scratch folders of labreport's CGI server (runtimes/cgi_server.py) that outlived it: it
    removes its own when stopped as labreport stops it (SIGTERM), never when killed."""
    for folder in sorted(Path(tempfile.gettempdir()).glob("labreport-cgi-*")):
        yield Item(
            "scratch",
            f"{folder} (a CGI server's scratch folder)",
            remove=functools.partial(shutil.rmtree, folder, ignore_errors=True),
        )


def shim_cache_files() -> Iterator[Item]:
    try:
        root = shim_cache.cache_dir()
        entries = shim_cache.entries(root)
        known = list((root / "known").glob("*")) if (root / "known").is_dir() else []
        records = list((root / "phases").glob("*")) if (root / "phases").is_dir() else []
    except (LabreportError, OSError):  # not a folder, or root's alone (this user is not root)
        return
    if entries or known or records:
        yield Item(
            "cache",
            f"{root}: {len(entries)} compiled module(s), {len(known)} known-file record(s), "
            f"{len(records)} phase record(s)",
            remove=lambda: _discard(shim_cache.clear(root)),
        )


def state_directory() -> Iterator[Item]:
    """The state directory itself: kept (caches: the shim build, the private engine's
    packages and data, built artifacts); removed only by `clean --all`."""
    state = paths.state_dir()
    if state.is_dir():
        size = sum(f.stat().st_size for f in state.rglob("*") if f.is_file() and not f.is_symlink())
        yield Item(
            "state",
            f"{state} ({size / 2**20:,.0f} MiB: cargo target, private engine, artifacts)",
            kept=True,
            remove=lambda: shutil.rmtree(state, ignore_errors=True),
        )


def _discard(_: object) -> None:
    pass


# What costs a /proc scan or a few file reads: cheap enough to run between test modules.
Probe = Callable[[], Iterator[Item]]
CHEAP: tuple[Probe, ...] = (processes, bundles, mounts, network, cgroups)


def every_probe(endpoints: Endpoints) -> tuple[Probe, ...]:
    """Every probe, the engine's and containerd's on the endpoints given."""
    return (
        *CHEAP,
        functools.partial(engine_objects, endpoints.engine),
        functools.partial(containerd_namespace, endpoints.containerd),
        shim_cache_files,
        cgi_scratch,
    )


def find(probes: tuple[Probe, ...]) -> list[Item]:
    return [item for probe in probes for item in probe()]


def leaks(probes: tuple[Probe, ...]) -> list[Item]:
    return [item for item in find(probes) if not item.kept]


def clean(endpoints: Endpoints, everything: bool = False) -> list[Item]:
    """Remove what was left behind; with everything, also what labreport keeps (the engine's
    images and caches, the state directory). In the order found: processes first (a shim holds
    its bundle), the state directory last."""
    removed = []
    for item in find(every_probe(endpoints) + ((state_directory,) if everything else ())):
        if item.kept and not everything:
            continue
        try:
            item.remove()
        except (OSError, LabreportError, *engine.ENGINE_GONE):
            continue
        removed.append(item)
    return removed
