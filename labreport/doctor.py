"""What this host has: every component labreport can use, found or missing, and why."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from labreport import engine, private_containerd, private_engine, proc, tools
from labreport.containerd import Ctr
from labreport.errors import LabreportError

PROBE_TIMEOUT_S = 20
SETUP_HINT = "run scripts/setup"


@dataclass(frozen=True)
class Component:
    name: str
    found: bool
    version: str = ""
    detail: str = ""
    hint: str = ""
    optional: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_version(text: str) -> str:
    match = re.search(r"v?(\d+\.\d+(?:\.\d+)?[^\s,]*)", text)
    return match.group(1) if match else text.strip().splitlines()[0] if text.strip() else ""


def _program(
    name: str, program: str, args: tuple[str, ...], *, optional: bool = False, hint: str = ""
) -> Component:
    path = tools.which(program)
    if path is None:
        return Component(
            name, False, detail=f"{program} not on PATH", hint=hint or SETUP_HINT, optional=optional
        )
    try:
        done = proc.run([str(path), *args], timeout_s=PROBE_TIMEOUT_S, check=False)
    except LabreportError as error:
        return Component(name, False, detail=str(error), hint=error.hint, optional=optional)
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0:
        return Component(
            name,
            False,
            detail=f"{path} exited {done.returncode}: {proc.tail(output, 200)}",
            hint=hint or SETUP_HINT,
            optional=optional,
        )
    return Component(name, True, _first_version(output), str(path), optional=optional)


def probe_docker() -> list[Component]:
    try:
        client = engine.connect(timeout_s=PROBE_TIMEOUT_S)
    except LabreportError as error:
        missing = Component("docker-engine", False, detail=str(error), hint=error.hint)
        return [missing]
    try:
        facts = engine.engine_facts(client)
    finally:
        client.close()
    cgroup_v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    return [
        Component(
            "docker-engine",
            True,
            facts["engine_version"],
            f"the {facts['source']} engine: API {facts['api_version']} at {engine.engine_url()}; "
            f"{facts['image_store']}; runtimes: {', '.join(facts['runtimes'])}"
            + (
                ""
                if facts["image_store"] == engine.CONTAINERD_STORE
                else "; Docker's own WASM path needs the containerd image store: "
                "`labreport measure` uses the private engine for it"
            ),
        ),
        Component("storage-driver", True, facts["storage_driver"], "as reported by the engine"),
        Component(
            "cgroup",
            True,
            f"v{facts['cgroup_version']}",
            f"driver {facts['cgroup_driver']}; host mounts "
            f"{'unified v2' if cgroup_v2 else 'v1 hierarchies'} at /sys/fs/cgroup",
        ),
    ]


def probe_private_engine() -> Component:
    """labreport's own Docker 26 engine: unpacked by setup, started only while measuring."""
    reason = private_engine.installed()
    if reason:
        return Component(
            "docker-engine-private",
            False,
            detail=reason,
            hint="run scripts/setup (it fetches Debian 13's docker.io into the state directory)",
            optional=True,
        )
    return Component(
        "docker-engine-private",
        True,
        _first_version(private_engine.version()),
        f"{private_engine.layout().dockerd}, containerd image store; started by `labreport "
        f"measure --engine private|auto` where needed and stopped after",
    )


def probe_containerd() -> Component:
    ctr = tools.which("ctr")
    if ctr is None:
        return Component("containerd", False, detail="ctr not on PATH", hint=SETUP_HINT)
    socket = tools.containerd_socket()
    if socket is None:
        return _private_containerd()
    try:
        version = Ctr(ctr, socket).version(timeout_s=PROBE_TIMEOUT_S)
    except LabreportError as error:
        return Component("containerd", False, detail=str(error), hint="is containerd running?")
    return Component(
        "containerd",
        True,
        version,
        f"{tools.containerd_source(socket)} at {socket}; ctr {ctr}; "
        f"namespace {tools.CONTAINERD_NAMESPACE}",
    )


def _private_containerd() -> Component:
    """No engine socket: whether `labreport measure` can start a containerd of its own."""
    looked = ", ".join(str(s) for s in tools.ENGINE_CONTAINERD_SOCKETS)
    found = _program("containerd", "containerd", ("--version",))
    if not found.found:
        return Component(
            "containerd",
            False,
            detail=f"no containerd socket (looked at {looked}) and no containerd to start",
            hint="start Docker (it runs containerd), run scripts/setup, "
            "or set LABREPORT_CONTAINERD_SOCKET",
        )
    return Component(
        "containerd",
        True,
        found.version,
        f"no engine socket (looked at {looked}): `labreport measure` starts a private "
        f"containerd ({found.detail}) under {private_containerd.home()} and stops it after",
    )


def probe_wasmtime_embedded() -> Component:
    try:
        from importlib.metadata import version

        import wasmtime  # noqa: F401
    except ImportError as error:
        return Component(
            "wasmtime", False, detail=f"cannot import wasmtime: {error}", hint=SETUP_HINT
        )
    return Component("wasmtime", True, version("wasmtime"), "PyPI wasmtime (embedded)")


def probe_go() -> Component:
    root = tools.go_root()
    if root is None:
        return Component("go", False, detail="no Go toolchain found", hint=SETUP_HINT)
    done = proc.run([str(root / "bin" / "go"), "version"], timeout_s=PROBE_TIMEOUT_S, check=False)
    if done.returncode != 0:
        return Component("go", False, detail=proc.tail(done.stderr, 200), hint=SETUP_HINT)
    version = re.search(r"go(\d+\.\d+(?:\.\d+)?)", done.stdout)
    return Component(
        "go", True, version.group(1) if version else done.stdout.strip(), f"GOROOT {root}"
    )


def probe_shim(shim: tools.Shim) -> Component:
    path = shim.find()
    if path is None:
        return Component(
            shim.binary,
            False,
            detail=f"not on PATH (runtime {shim.runtime})",
            hint="run scripts/setup (it builds the shims from shim/ with cargo)",
        )
    found = _program(shim.binary, str(path), ("-v",))
    if not found.found:
        return found
    return Component(
        shim.binary,
        True,
        found.version,
        f"{path}; runtime {shim.runtime}; compiles the module {shim.compiles.split(';')[0]}",
    )


PROBES: tuple[Callable[[], list[Component]], ...] = (
    probe_docker,
    lambda: [probe_private_engine()],
    lambda: [probe_containerd()],
    lambda: [_program("buildah", "buildah", ("--version",))],
    lambda: [probe_shim(shim) for shim in tools.SHIMS],
    lambda: [probe_wasmtime_embedded()],
    lambda: [probe_go()],
    lambda: [
        _program(
            "tinygo",
            "tinygo",
            ("version",),
            optional=True,
            hint="optional: put tinygo on PATH to add the TinyGo variant",
        )
    ],
    lambda: [_program("hyperfine", "hyperfine", ("--version",))],
)


def diagnose() -> list[Component]:
    return [component for probe in PROBES for component in probe()]


def format_table(components: list[Component]) -> str:
    rows = [("component", "status", "version", "detail")]
    for component in components:
        status = "found" if component.found else ("optional" if component.optional else "MISSING")
        detail = component.detail
        if not component.found and component.hint:
            detail = f"{detail} -> {component.hint}"
        rows.append((component.name, status, component.version or "-", detail))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        for row in rows
    )
