"""What this host has: every component labreport can use, found or missing, and why."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from labreport import engine, proc, tools
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
            f"API {facts['api_version']} at {engine.engine_url()}; "
            f"runtimes: {', '.join(facts['runtimes'])}",
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


def probe_containerd() -> Component:
    ctr = tools.which("ctr")
    if ctr is None:
        return Component("containerd", False, detail="ctr not on PATH", hint=SETUP_HINT)
    socket = tools.containerd_socket()
    if socket is None:
        return Component(
            "containerd",
            False,
            detail="no containerd socket (looked at "
            + ", ".join(str(s) for s in tools.ENGINE_CONTAINERD_SOCKETS)
            + ")",
            hint="start Docker (it runs containerd) or set LABREPORT_CONTAINERD_SOCKET",
        )
    try:
        done = proc.run([str(ctr), "--address", str(socket), "version"], timeout_s=PROBE_TIMEOUT_S)
    except LabreportError as error:
        return Component("containerd", False, detail=str(error), hint="is containerd running?")
    server = done.stdout.split("Server:", 1)[-1]
    version = re.search(r"Version:\s*(\S+)", server)
    owner = "the engine's own" if socket in tools.ENGINE_CONTAINERD_SOCKETS else "configured"
    return Component(
        "containerd",
        True,
        version.group(1) if version else "unknown",
        f"{owner} containerd at {socket}; ctr {ctr}; namespace {tools.CONTAINERD_NAMESPACE}",
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


def probe_shim() -> Component:
    path = tools.which(tools.SHIM_BINARY)
    if path is None:
        return Component(
            "wasmtime-shim",
            False,
            detail=f"{tools.SHIM_BINARY} not on PATH (runtime io.containerd.wasmtime.v1)",
            hint="run scripts/setup (it builds the shim from shim/ with cargo)",
        )
    found = _program("wasmtime-shim", str(path), ("-v",))
    if not found.found:
        return found
    return Component(
        "wasmtime-shim",
        True,
        found.version,
        f"{path}; runtime io.containerd.wasmtime.v1 (labreport's own shim crate)",
    )


PROBES: tuple[Callable[[], list[Component]], ...] = (
    probe_docker,
    lambda: [probe_containerd()],
    lambda: [_program("buildah", "buildah", ("--version",))],
    lambda: [probe_shim()],
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
