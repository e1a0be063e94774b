"""Docker's own WASM path: the wasi/wasm OCI archive `docker load`ed, then `docker run --rm
--runtime <shim> --platform wasi/wasm`, on an engine with the containerd image store."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Mapping
from typing import Any

from labreport.errors import LabreportError
from labreport.host import engine, paths, proc
from labreport.host.endpoints import Endpoints
from labreport.host.shims import WASMTIME_AOT_SHIM, WASMTIME_SHIM, Shim
from labreport.record.models import CheckRecord, Detail
from labreport.runtimes.base import RawRun, Requirements, RunContext, Spec
from labreport.runtimes.docker import DOCKER_ERRORS, DockerCliRuntime
from labreport.runtimes.serving import serves_wagi, wagi_check, wagi_env
from labreport.runtimes.shim import ShimStarts


def docker_wasm_support(info: Mapping[str, Any]) -> tuple[bool, str]:
    """Can this engine run wasi/wasm images itself? It needs the containerd image store; the
    runtime is a containerd shim name that Docker passes through without registration."""
    if engine.has_containerd_store(info):
        return True, f"containerd image store ({info.get('ServerVersion', '?')})"
    graph = (
        f"the engine (Docker {info.get('ServerVersion', '?')}) keeps images in its own graph "
        f"driver ({info.get('Driver', '?')}), not the containerd image store that wasi/wasm "
        "images need"
    )
    if not paths.is_root():
        return (
            False,
            f"{paths.NEEDS_ROOT}: {graph}, and labreport's private engine, which has it, "
            "needs root to start",
        )
    return (
        False,
        f"{graph}; measure with --engine private (`labreport setup --engine` fetches a "
        "Docker 26 engine)",
    )


class DockerWasmRuntime(DockerCliRuntime):
    """Docker running the WASM image itself on one of labreport's wasmtime shims.

    It also serves (WAGI in the shim: memory idle and under load) and runs the WAGI check.
    """

    image_key = "wasm-image"
    platform = "wasi/wasm"
    serves = True

    def __init__(self, shim: Shim, name: str, description: str) -> None:
        super().__init__()
        self.shim = ShimStarts(shim)
        self.name = name
        # The private engine where the host's lacks the containerd image store.
        self.spec = Spec(
            description, frozenset({self.image_key}), Requirements(containerd_store=True)
        )
        self.runtime_option = shim.runtime

    def available(self, endpoints: Endpoints) -> tuple[bool, str]:
        missing = self.shim.missing() if endpoints.engine.local else ""
        if missing:
            return False, missing
        try:
            client = engine.connect(timeout_s=20, url=endpoints.engine.url)
        except LabreportError as error:
            return False, error.message
        try:
            supported, detail = docker_wasm_support(client.info())
        finally:
            client.close()
        if not supported:
            return False, detail
        return super().available(endpoints)

    def command(self, env: Mapping[str, str]) -> str:
        """The load (once per run, shared by both docker-wasm runtimes), then one run."""
        load = shlex.join([*self._cli(), "load", "-i", "wasm.tar"])
        return f"{load} && {super().command(self.shim.env(env, 'TOKEN'))}"

    def run_once(self, env: Mapping[str, str]) -> RawRun:
        """A timed start that also reads the shim's own timeline of it (local engines)."""
        assert self.ctx is not None
        name = self._name("cli")
        done, record = self.shim.start(
            env, name, lambda run_env: self._timed(self.run_argv(run_env, name, cli=True), name)
        )
        return RawRun(done.stdout, done.wall_ns, done.returncode, stderr=done.stderr, shim=record)

    def setup(self, ctx: RunContext) -> None:
        self.ctx = ctx
        reference = ctx.built.references[self.image_key]
        if reference not in ctx.built.loaded:
            proc.run(
                [*self._cli(), "load", "-i", str(ctx.built.files[self.image_key])],
                timeout_s=300,
                what="docker load (wasi/wasm image)",
                hint="the engine needs the containerd image store (labreport doctor)",
            )
            ctx.built.loaded.add(reference)
        self.image_id = reference
        self.shim.prepare(ctx, local=ctx.endpoints.engine.local)

    def cleanup(self) -> None:
        try:
            super().cleanup()
            if self.ctx is not None and self.image_id in self.ctx.built.loaded:
                with contextlib.suppress(*DOCKER_ERRORS):
                    self.ctx.docker().images.remove(self.image_id)
                self.ctx.built.loaded.discard(self.image_id)
        finally:
            if self.ctx is not None:
                self.shim.cleanup(f"labreport-{self.ctx.run_id}-")

    def details(self) -> dict[str, Detail]:
        return self.shim.details()

    # runwasi's shimkit (containerd-shimkit 0.1.2, sandbox/oci.rs) runs Docker's prestart hook
    # `libnetwork-setkey` with the shim's own pid, and the shim lives in the host's network
    # namespace: on a bridge network Docker would move the container's interface into the
    # host's namespace (seen here: a veth in the host, the task in an empty namespace, the
    # published port never answering). On the host's network there is no hook and no interface.
    host_network = True

    def service_env(self, ctx: RunContext, port: int) -> tuple[dict[str, str], str]:
        """WAGI in the shim, listening on a loopback port of the host's network."""
        return wagi_env(port)

    def mode_declared(self, ctx: RunContext) -> bool:
        return serves_wagi(ctx.config)

    def own_checks(self, ctx: RunContext) -> list[CheckRecord]:
        """The WAGI check: one run with the lab's WAGI environment, its CGI response checked."""
        if ctx.config.wagi is None:
            return []  # the lab has no WAGI mode
        argv = self.run_argv(ctx.config.wagi_mode().env, self._name("wagi"))
        done = proc.run(argv, timeout_s=ctx.timeout_s, check=False, what="docker run (WAGI)")
        return [wagi_check(ctx, self.name, done.stdout, done.returncode, shlex.join(argv))]


def docker_wasm() -> DockerWasmRuntime:
    """Docker's WASM path on the shim that compiles the module at every start."""
    return DockerWasmRuntime(
        WASMTIME_SHIM,
        "docker-wasm",
        "docker run --rm --runtime io.containerd.wasmtime.v1 --platform wasi/wasm (the wasi/wasm "
        "OCI image, docker load; the shim compiles the module at every start)",
    )


def docker_wasm_aot() -> DockerWasmRuntime:
    """The same image through Docker on the shim with the file cache.

    Docker never hands the shim the image (runwasi #460: it leaves the containerd container's
    image empty), so a cache kept with the image could not apply; the file cache is keyed by
    the module the shim reads from the rootfs, so it does.
    """
    return DockerWasmRuntime(
        WASMTIME_AOT_SHIM,
        "docker-wasm-aot",
        "docker run --rm --runtime io.containerd.wasmtime-aot.v1 --platform wasi/wasm (the "
        "shim with the file cache, through Docker)",
    )
