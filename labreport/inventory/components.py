"""What this host has: every component labreport can use, found or missing, and why."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from labreport.config import LabConfig
from labreport.errors import LabreportError
from labreport.host import (
    engine,
    engine_layout,
    paths,
    private_containerd,
    proc,
    shim_cache,
)
from labreport.host.containerd import Ctr
from labreport.host.endpoints import (
    CONTAINERD_NAMESPACE,
    ENGINE_CONTAINERD_SOCKETS,
    ContainerdEndpoint,
    Endpoints,
    EngineEndpoint,
)
from labreport.host.shims import SHIMS, Shim
from labreport.runtimes import hey

PROBE_TIMEOUT_S = 20
SETUP_HINT = "run `labreport setup`"


@dataclass(frozen=True)
class Component:
    name: str
    found: bool
    version: str = ""
    detail: str = ""
    hint: str = ""
    optional: bool = False
    needs_root: bool = False  # there, but only root may use it (this user is not root)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_version(text: str) -> str:
    match = re.search(r"v?(\d+\.\d+(?:\.\d+)?[^\s,]*)", text)
    return match.group(1) if match else text.strip().splitlines()[0] if text.strip() else ""


def _program(
    name: str, program: str, args: tuple[str, ...], *, optional: bool = False, hint: str = ""
) -> Component:
    path = paths.which(program)
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


def probe_docker(endpoint: EngineEndpoint) -> list[Component]:
    try:
        client = engine.connect(timeout_s=PROBE_TIMEOUT_S, url=endpoint.url)
    except LabreportError as error:
        missing = Component("docker-engine", False, detail=str(error), hint=error.hint)
        return [missing]
    try:
        facts = engine.engine_facts(client, endpoint)
    finally:
        client.close()
    cgroup_v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    return [
        Component(
            "docker-engine",
            True,
            facts["engine_version"],
            f"the {facts['source']} engine: API {facts['api_version']} at {endpoint.url}; "
            f"{facts['image_store']}; runtimes: {', '.join(facts['runtimes'])}"
            + (
                ""
                if facts["image_store"] == engine.CONTAINERD_STORE
                else "; Docker's own WASM path needs the containerd image store: "
                + (
                    "`labreport measure` uses the private engine for it"
                    if paths.is_root()
                    else "labreport's private engine has it, but starting it needs root"
                )
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


def _needs_root(name: str, why: str) -> Component:
    return Component(
        name,
        False,
        detail=f"{paths.NEEDS_ROOT}: {why}",
        hint=paths.NEEDS_ROOT_HINT,
        needs_root=True,
    )


def probe_private_engine() -> Component:
    """labreport's own Docker 26 engine: unpacked by setup, started only while measuring."""
    if not paths.is_root():
        return _needs_root("docker-engine-private", "dockerd mounts, makes a bridge and cgroups")
    reason = engine_layout.installed()
    if reason:
        return Component(
            "docker-engine-private",
            False,
            detail=reason,
            hint="run `labreport setup --engine` (it fetches Debian 13's docker.io into the "
            "state directory)",
            optional=True,
        )
    return Component(
        "docker-engine-private",
        True,
        _first_version(engine_layout.version()),
        f"{engine_layout.layout().dockerd}, containerd image store; started by `labreport "
        f"measure --engine private|auto` where needed and stopped after",
    )


def probe_containerd(endpoint: ContainerdEndpoint) -> Component:
    ctr = paths.which("ctr")
    if ctr is None:
        return Component("containerd", False, detail="ctr not on PATH", hint=SETUP_HINT)
    socket = endpoint.socket
    if endpoint.needs_root:
        return _needs_root("containerd", endpoint.source)
    if socket is None:
        if not paths.is_root():
            return _needs_root(
                "containerd", "no engine socket, and a private containerd needs root"
            )
        return _private_containerd()
    try:
        version = Ctr(ctr, socket).version(timeout_s=PROBE_TIMEOUT_S)
    except LabreportError as error:
        return Component("containerd", False, detail=str(error), hint="is containerd running?")
    return Component(
        "containerd",
        True,
        version,
        f"{endpoint.source} at {socket}; ctr {ctr}; namespace {CONTAINERD_NAMESPACE}",
    )


def _private_containerd() -> Component:
    """No engine socket: whether `labreport measure` can start a containerd of its own."""
    looked = ", ".join(str(s) for s in ENGINE_CONTAINERD_SOCKETS)
    found = _program("containerd", "containerd", ("--version",))
    if not found.found:
        return Component(
            "containerd",
            False,
            detail=f"no containerd socket (looked at {looked}) and no containerd to start",
            hint="start Docker (it runs containerd), run `labreport setup --packages`, "
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
        # Imported here, not at the top: loading wasmtime's native library adds 50-90 ms
        # (measured here) to every command that never runs it.
        import wasmtime  # noqa: F401
    except ImportError as error:
        return Component(
            "wasmtime", False, detail=f"cannot import wasmtime: {error}", hint=SETUP_HINT
        )
    return Component("wasmtime", True, metadata.version("wasmtime"), "PyPI wasmtime (embedded)")


def probe_go() -> Component:
    root = paths.go_root()
    if root is None:
        return Component("go", False, detail="no Go toolchain found", hint=SETUP_HINT)
    done = proc.run([str(root / "bin" / "go"), "version"], timeout_s=PROBE_TIMEOUT_S, check=False)
    if done.returncode != 0:
        return Component("go", False, detail=proc.tail(done.stderr, 200), hint=SETUP_HINT)
    version = re.search(r"go(\d+\.\d+(?:\.\d+)?)", done.stdout)
    return Component(
        "go", True, version.group(1) if version else done.stdout.strip(), f"GOROOT {root}"
    )


def probe_shim(shim: Shim) -> Component:
    path = shim.find()
    if path is None:
        return Component(
            shim.binary,
            False,
            detail=f"not on PATH (runtime {shim.runtime})",
            hint="run `labreport setup --shims` (it builds them with cargo)",
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


def probe_shim_cache() -> Component:
    """The caching shim's compiled modules: listed by `labreport cache`, root's alone."""
    try:
        root = shim_cache.cache_dir()
        found = shim_cache.entries(root)
    except LabreportError as error:
        if error.message.startswith(paths.NEEDS_ROOT):
            return _needs_root("shim-cache", error.message.removeprefix(f"{paths.NEEDS_ROOT}: "))
        return Component("shim-cache", False, detail=error.message, hint=error.hint)
    size = sum(entry.size_bytes for entry in found)
    return Component(
        "shim-cache", True, detail=f"{root}: {len(found)} compiled module(s), {size:,} B"
    )


PROBES: tuple[Callable[[Endpoints], list[Component]], ...] = (
    lambda endpoints: probe_docker(endpoints.engine),
    lambda _: [
        _program(
            "docker-cli",
            "docker",
            ("--version",),
            hint="install the docker CLI (Debian's docker.io): the docker-cli and docker-wasm "
            "runtimes run it",
        )
    ],
    lambda _: [probe_private_engine()],
    lambda endpoints: [probe_containerd(endpoints.containerd)],
    lambda _: [_program("buildah", "buildah", ("--version",))],
    lambda _: [probe_shim(shim) for shim in SHIMS],
    lambda _: [probe_shim_cache()],
    lambda _: [probe_wasmtime_embedded()],
    lambda _: [probe_go()],
    lambda _: [
        _program(
            "tinygo",
            "tinygo",
            ("version",),
            optional=True,
            hint="optional: put tinygo on PATH to add the TinyGo variant",
        )
    ],
    lambda _: [_program("hyperfine", "hyperfine", ("--version",))],
    lambda _: [probe_load_tool()],
)


def probe_load_tool() -> Component:
    """hey, the load tool beside labreport's checked client; serving is measured without it."""
    found = hey.find_tool()
    if isinstance(found, str):
        return Component(
            "hey",
            False,
            detail=found,
            hint="run `labreport setup --packages` (Debian's hey); serving is still measured "
            "by labreport's checked client",
        )
    return Component("hey", True, found.version, found.path)


def lab_tools(config: LabConfig) -> list[Component]:
    """The programs a lab's command builds run (clang, cargo, make, ...), once each; a tool only
    optional builds use is optional."""
    optional: dict[str, bool] = {}
    for spec in config.builds.values():
        if spec.toolchain == "command":
            optional[spec.tool] = optional.get(spec.tool, True) and spec.optional
    return [
        _program(
            tool,
            tool,
            ("--version",),
            optional=only_optional,
            hint=f"{config.name}'s builds run it: install {tool} (`labreport setup "
            "--packages` installs the built-in labs' tools)",
        )
        for tool, only_optional in optional.items()
    ]


def diagnose(endpoints: Endpoints, config: LabConfig | None = None) -> list[Component]:
    """Every component, on the engine and containerd given (a measurement passes the ones it
    measures on), and the build tools of a lab."""
    found = [component for probe in PROBES for component in probe(endpoints)]
    return found + (lab_tools(config) if config is not None else [])
