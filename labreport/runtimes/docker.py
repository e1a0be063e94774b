"""The traditional container on the Docker engine: the CLI a user types, and the engine's API."""

from __future__ import annotations

import contextlib
import itertools
import shlex
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import docker
import docker.errors
import requests.exceptions

from labreport import build, engine, proc
from labreport.errors import LabreportError
from labreport.models import MemoryRecord
from labreport.runtimes import (
    RawRun,
    RunContext,
    RuntimeBase,
    measure_server_memory,
    wait_until_serving,
)


def engine_time_ns(stamp: str) -> int:
    """Nanoseconds since the epoch from the engine's RFC 3339 timestamps (nanosecond digits)."""
    base, _, rest = stamp.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(base + "+00:00").timestamp()
    fraction = (rest + "000000000")[:9]
    return int(seconds) * 1_000_000_000 + int(fraction)


def cache_excluded_usage(memory_stats: Mapping[str, Any]) -> int:
    """What `docker stats` shows: usage minus inactive page cache (cgroup v1 or v2 key)."""
    stats = memory_stats.get("stats", {})
    inactive = stats.get("total_inactive_file", stats.get("inactive_file", 0))
    return max(0, int(memory_stats["usage"]) - int(inactive))


class _DockerBase(RuntimeBase):
    needs = frozenset({"image"})

    def __init__(self) -> None:
        self.ctx: RunContext | None = None
        self.image_id = ""
        self.names = itertools.count()

    def available(self) -> tuple[bool, str]:
        try:
            engine.connect(timeout_s=20).close()
        except LabreportError as error:
            return False, error.message
        return True, ""

    def prepare(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.image_id = ctx.built.image_ids["image"]

    def _labels(self) -> dict[str, str]:
        assert self.ctx is not None
        return {build.LABEL_MANAGED: "true", build.LABEL_RUN: self.ctx.run_id}

    def _name(self, purpose: str) -> str:
        assert self.ctx is not None
        return f"labreport-{self.ctx.run_id}-{purpose}-{next(self.names)}"

    def cleanup(self) -> None:
        if self.ctx is not None:
            with contextlib.suppress(
                LabreportError, docker.errors.APIError, requests.exceptions.RequestException
            ):
                engine.remove_run_containers(self.ctx.docker(), self.ctx.run_id)


class DockerCliRuntime(_DockerBase):
    """`docker run --rm`: client, daemon, containerd, runc; what a student times by hand."""

    name = "docker-cli"
    description = "docker run --rm (CLI + dockerd + containerd + runc)"

    def available(self) -> tuple[bool, str]:
        ok, reason = super().available()
        if ok and proc_which("docker") is None:
            return False, "the docker CLI is not on PATH"
        return ok, reason

    def command(self, env: Mapping[str, str]) -> str:
        flags = " ".join(f"-e {shlex.quote(f'{k}={v}')}" for k, v in env.items())
        return f"docker run --rm {flags} {self.image_id[:19] or 'IMAGE'}"

    def run_argv(self, env: Mapping[str, str], name: str = "") -> list[str]:
        """`docker run --rm`, labelled with the run so that a sweep finds what it left."""
        argv = ["docker", "run", "--rm", "--network", "none"]
        if name:
            argv += ["--name", name]
        for key, value in self._labels().items():
            argv += ["--label", f"{key}={value}"]
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        return [*argv, self.image_id]

    def run_once(self, env: Mapping[str, str]) -> RawRun:
        assert self.ctx is not None
        name = self._name("cli")
        argv = self.run_argv(env, name)
        try:
            done = proc.timed(argv, timeout_s=self.ctx.timeout_s, what="docker run --rm")
        except BaseException:
            with contextlib.suppress(
                docker.errors.APIError, LabreportError, requests.exceptions.RequestException
            ):
                self.ctx.docker().containers.get(name).remove(force=True)
            raise
        return RawRun(done.stdout, done.wall_ns, done.returncode, stderr=done.stderr)


def proc_which(program: str) -> str | None:
    from labreport import tools

    found = tools.which(program)
    return str(found) if found else None


class DockerApiRuntime(_DockerBase):
    """The engine API (create, start, wait) and the container's own start/finish times."""

    name = "docker-api"
    description = "Docker engine API create/start/wait (runc); engine's own StartedAt..FinishedAt"

    def command(self, env: Mapping[str, str]) -> str:
        return (
            f"POST /containers/create (Env={sorted(f'{k}={v}' for k, v in env.items())}) "
            f"+ /start + /wait + /logs, image {self.image_id[:19] or 'IMAGE'}"
        )

    def run_once(self, env: Mapping[str, str]) -> RawRun:
        assert self.ctx is not None
        client = self.ctx.docker()
        started = time.perf_counter_ns()
        container = client.containers.create(
            self.image_id,
            environment=dict(env),
            labels=self._labels(),
            name=self._name("api"),
            network_mode="none",
        )
        try:
            container.start()
            try:
                result = container.wait(timeout=self.ctx.timeout_s)
            except requests.exceptions.RequestException as error:
                raise LabreportError(
                    f"container {container.name} did not exit within {self.ctx.timeout_s:g} s",
                    "raise --timeout, or check the image's entrypoint",
                ) from error
            wall_ns = time.perf_counter_ns() - started
            stdout = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
            stderr = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
            container.reload()
            state = container.attrs["State"]
            run_ns = engine_time_ns(state["FinishedAt"]) - engine_time_ns(state["StartedAt"])
        finally:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        return RawRun(
            stdout,
            wall_ns,
            int(result.get("StatusCode", -1)),
            engine_run_ns=run_ns if run_ns > 0 else None,
            stderr=stderr,
        )

    def memory(self, ctx: RunContext) -> list[MemoryRecord]:
        client = ctx.docker()
        port = ctx.config.server.port
        container = client.containers.run(  # type: ignore[call-overload]
            self.image_id,
            detach=True,
            environment=dict(ctx.config.server.env),
            labels=self._labels(),
            name=self._name("server"),
            ports={f"{port}/tcp": ("127.0.0.1", None)},
        )
        try:
            container.reload()
            host_port = container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]["HostPort"]
            url = f"http://127.0.0.1:{host_port}{ctx.config.server.path}"

            def alive() -> bool:
                container.reload()
                return bool(container.attrs["State"]["Running"])

            def stats() -> Mapping[str, Any]:
                return container.stats(stream=False, one_shot=True)["memory_stats"]  # type: ignore[no-any-return]

            def peak() -> int | None:
                value = stats().get("max_usage")
                return int(value) if value else None

            wait_until_serving(url, ctx.timeout_s, alive)
            record = measure_server_memory(
                ctx,
                self.name,
                url,
                read_bytes=lambda: cache_excluded_usage(stats()),
                read_peak=peak,
                method="container cgroup memory usage minus inactive file cache "
                "(engine stats API, as docker stats shows it)",
                peak_method="container cgroup peak usage incl. page cache "
                "(engine stats max_usage = cgroup v1 memory.max_usage_in_bytes)",
                pid=int(container.attrs["State"]["Pid"]) or None,
            )
        finally:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        return [record]


def docker_wasm_support(info: Mapping[str, Any]) -> tuple[bool, str]:
    """Can this engine run wasm itself (containerd image store plus a wasm shim runtime)?"""
    runtimes = sorted(info.get("Runtimes") or {})
    wasm = [name for name in runtimes if "wasm" in name]
    status = " ".join(str(part) for pair in info.get("DriverStatus") or [] for part in pair)
    containerd_store = "io.containerd.snapshotter" in status
    if wasm and containerd_store:
        return True, f"wasm runtimes {', '.join(wasm)} on the containerd image store"
    missing = []
    if not containerd_store:
        missing.append(
            f"the engine keeps images in its own graph driver ({info.get('Driver', '?')}), "
            "not the containerd image store that wasi/wasm images need"
        )
    if not wasm:
        missing.append(f"no wasm runtime is registered with it (runtimes: {', '.join(runtimes)})")
    return False, "; ".join(missing)


class DockerWasmRuntime(_DockerBase):
    """Docker Engine's own wasm support, detected; measuring it is left to ctr-wasmtime."""

    name = "docker-wasm"
    description = "docker run --runtime io.containerd.wasmtime.v1 --platform wasi/wasm"
    needs = frozenset()

    def available(self) -> tuple[bool, str]:
        try:
            client = engine.connect(timeout_s=20)
        except LabreportError as error:
            return False, error.message
        try:
            supported, detail = docker_wasm_support(client.info())
        finally:
            client.close()
        if supported:
            return False, f"detected ({detail}) but not measured by this labreport version"
        return False, detail

    def command(self, env: Mapping[str, str]) -> str:
        return self.description

    def run_once(self, env: Mapping[str, str]) -> RawRun:
        raise LabreportError("docker-wasm is detection only", "use --runtime ctr-wasmtime")
