"""Containers on the Docker engine: the traditional image through the CLI a user types and through
the engine's API. Docker's own WASM path builds on these (docker_wasm.py).

Every runtime here talks to the engine in use (the host's, labreport's private one, or the
target the user named: RunContext.endpoints) and measures memory the same way: the container
cgroup's peak during one CLI run, and server mode idle and under load.
"""

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

from labreport.errors import LabreportError
from labreport.host import cgroup, engine, paths, proc
from labreport.host.endpoints import Endpoints
from labreport.record.models import MemoryRecord
from labreport.runtimes.base import RawRun, RunContext, Scope, Served, Spec
from labreport.runtimes.memory import (
    Finished,
    Meter,
    Service,
    checked_peak,
    once_memory,
    once_peak_method,
)
from labreport.runtimes.serving import (
    WAGI_LISTEN_ENV,
    ContainerServing,
    ServiceOutcome,
    free_port,
    measure_started,
    program_server_env,
)

ONCE_PEAK_METHOD = once_peak_method("container")
SERVER_USAGE_METHOD = (
    "container cgroup memory usage minus inactive file cache (engine stats API, as docker stats "
    "shows it)"
)
SERVER_PEAK_METHOD = (
    "container cgroup peak usage incl. page cache (engine stats max_usage = cgroup v1 "
    "memory.max_usage_in_bytes)"
)
DOCKER_ERRORS = (docker.errors.APIError, LabreportError, requests.exceptions.RequestException)


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


class _DockerBase(ContainerServing):
    image_key = "image"  # which built image the runtime runs
    runtime_option = ""  # docker run --runtime (empty: the engine's default, runc)
    platform = ""  # docker run --platform

    def __init__(self) -> None:
        self.ctx: RunContext | None = None
        self.image_id = ""
        self.names = itertools.count()

    def available(self, endpoints: Endpoints) -> tuple[bool, str]:
        try:
            engine.connect(timeout_s=20, url=endpoints.engine.url).close()
        except LabreportError as error:
            return False, error.message
        return True, ""

    def setup(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.image_id = ctx.built.image_ids[self.image_key]

    def _labels(self) -> dict[str, str]:
        assert self.ctx is not None
        return {engine.LABEL_MANAGED: "true", engine.LABEL_RUN: self.ctx.run_id}

    def _cli(self) -> list[str]:
        """The docker CLI pointed at the engine in use."""
        assert self.ctx is not None
        return self.ctx.endpoints.engine.cli()

    def _name(self, purpose: str) -> str:
        assert self.ctx is not None
        return f"labreport-{self.ctx.run_id}-{purpose}-{next(self.names)}"

    def _run_flags(self) -> list[str]:
        flags = ["--runtime", self.runtime_option] if self.runtime_option else []
        return flags + (["--platform", self.platform] if self.platform else [])

    def _args(self) -> list[str]:
        """The CLI mode's arguments: docker appends them to the image's entrypoint (Cmd)."""
        return list(self.ctx.config.once.args) if self.ctx is not None else []

    def run_argv(self, env: Mapping[str, str], name: str = "", cli: bool = False) -> list[str]:
        """`docker run --rm`, labelled with the run so that a sweep finds what it left; cli: the
        CLI mode's, with its arguments."""
        argv = [*self._cli(), "run", "--rm", "--network", "none", *self._run_flags()]
        if name:
            argv += ["--name", name]
        for key, value in self._labels().items():
            argv += ["--label", f"{key}={value}"]
        for key, value in env.items():
            argv += ["-e", f"{key}={value}"]
        return [*argv, self.image_id, *(self._args() if cli else [])]

    def _create(self, env: Mapping[str, str], purpose: str, **options: Any) -> Any:
        """A container of this runtime through the API (not started)."""
        assert self.ctx is not None
        extra: dict[str, Any] = {"runtime": self.runtime_option} if self.runtime_option else {}
        if self.platform:
            extra["platform"] = self.platform
        return self.ctx.docker().containers.create(
            self.image_id,
            environment=dict(env),
            labels=self._labels(),
            name=self._name(purpose),
            **extra,
            **options,
        )

    def cleanup(self) -> None:
        if self.ctx is not None:
            with contextlib.suppress(*DOCKER_ERRORS):
                engine.remove_run_containers(self.ctx.docker(), self.ctx.run_id)

    # -- after the rounds: one CLI run's cgroup peak, and server mode ------------------------

    # Does it serve (and so measure server-mode memory) after the rounds?
    serves = False

    def serve(self, ctx: RunContext, scope: Scope) -> Served:
        """A CLI run's peak and (where it serves) server mode; on a remote engine, why not."""
        if not self.serves:
            return Served(details=self.details())
        if ctx.endpoints.engine.local:
            return super().serve(ctx, scope)
        why = (
            "not measurable from here: the container's cgroup and its published port are "
            f"on the remote engine's host ({ctx.endpoints.engine.url})"
        )
        unmeasured = [
            MemoryRecord(runtime=self.name, mode="once", method=ONCE_PEAK_METHOD,
                         readings=[], failure=why),
            MemoryRecord(runtime=self.name, method=SERVER_USAGE_METHOD, readings=[],
                         failure=why),
        ]  # fmt: skip
        return Served(
            memory=unmeasured if scope.memory else [],
            checks=self.own_checks(ctx),
            details=self.details(),
        )

    def _once_peak(self, ctx: RunContext) -> tuple[int | None, str]:
        """One checked CLI run while its container cgroup's peak is polled; (peak, failure)."""
        container = self._create(
            ctx.config.once.env, "mem", network_mode="none", command=self._args() or None
        )

        def run() -> Finished:
            container.start()
            code = container.wait(timeout=ctx.timeout_s)["StatusCode"]
            return Finished(
                code,
                container.logs(stdout=True, stderr=False).decode("utf-8", "replace"),
                container.logs(stdout=False, stderr=True).decode("utf-8", "replace"),
            )

        try:
            container.reload()
            container_cgroup = cgroup.container_cgroup(
                container.id, container.attrs["HostConfig"], ctx.endpoints.engine.cgroup_parent
            )
            # Polling starts before the start call: a short run's cgroup may be gone by the
            # time the call returns.
            return checked_peak(ctx, container_cgroup, "container's", run)
        finally:
            with contextlib.suppress(*DOCKER_ERRORS):
                container.remove(force=True)

    def once_memory(self, ctx: RunContext) -> MemoryRecord:
        return once_memory(self.name, ONCE_PEAK_METHOD, lambda: self._once_peak(ctx))

    # Serve on the host's network (a free loopback port) instead of publishing the lab's port
    # from the container's own network namespace.
    host_network = False

    def service_env(self, ctx: RunContext, port: int) -> tuple[dict[str, str], str]:
        """The environment that makes the container serve on port, and how, in words."""
        return program_server_env(ctx, port)

    def service(self, ctx: RunContext) -> ServiceOutcome:
        """Serving on loopback (its port published, or the host's network); the outcome,
        whatever it is."""
        if self.host_network:
            port = free_port()
            env, how = self.service_env(ctx, port)
            container = self._create(env, "server", network_mode="host")
            network = "--network host"
        else:
            port = ctx.config.served().port
            env, how = self.service_env(ctx, port)
            container = self._create(env, "server", ports={f"{port}/tcp": ("127.0.0.1", None)})
            network = f"-p 127.0.0.1::{port}"
        shown_env = " ".join(f"-e {shlex.quote(f'{k}={v}')}" for k, v in env.items())
        command = f"docker run -d {shlex.join(self._run_flags())} {network} {shown_env} IMAGE"
        service = Service("wagi" if WAGI_LISTEN_ENV in env else "server", how, command)

        def url() -> str:
            published = port
            if not self.host_network:
                bindings = container.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"]
                published = int(bindings[0]["HostPort"])
            return f"http://127.0.0.1:{published}{ctx.config.served().path}"

        def alive() -> bool:
            container.reload()
            return bool(container.attrs["State"]["Running"])

        def stats() -> Mapping[str, Any]:
            return container.stats(stream=False, one_shot=True)["memory_stats"]  # type: ignore[no-any-return]

        def peak() -> int | None:
            value = stats().get("max_usage")
            return int(value) if value else None

        try:
            started = time.perf_counter_ns()
            container.start()
            container.reload()
            return measure_started(
                ctx, self.name, service, SERVER_USAGE_METHOD, started,
                url=url,
                alive=alive,
                why_not=lambda error: self._why_not_serving(container, error),
                meter=lambda: Meter(
                    lambda: cache_excluded_usage(stats()),
                    peak,
                    SERVER_USAGE_METHOD,
                    SERVER_PEAK_METHOD,
                    int(container.attrs["State"]["Pid"]) or None,
                ),
            )  # fmt: skip
        finally:
            with contextlib.suppress(*DOCKER_ERRORS):
                container.remove(force=True)

    @staticmethod
    def _why_not_serving(container: Any, error: BaseException) -> str:
        with contextlib.suppress(*DOCKER_ERRORS):
            container.reload()
            state = container.attrs["State"]
            if not state["Running"]:
                logs = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
                return (
                    f"the container exited on its own with {state['ExitCode']}: "
                    f"{proc.tail(logs, 300) or 'no output'}"
                )
        return f"it never answered on the published port ({error})"


class DockerCliRuntime(_DockerBase):
    """`docker run --rm`: client, daemon, containerd, runc; what a student times by hand."""

    name = "docker-cli"
    spec = Spec("docker run --rm (CLI + dockerd + containerd + runc)", frozenset({"image"}))

    def available(self, endpoints: Endpoints) -> tuple[bool, str]:
        ok, reason = super().available(endpoints)
        if ok and paths.which("docker") is None:
            return False, "the docker CLI is not on PATH"
        return ok, reason

    def command(self, env: Mapping[str, str]) -> str:
        flags = " ".join(f"-e {shlex.quote(f'{k}={v}')}" for k, v in env.items())
        run = shlex.join([*self._cli(), "run", "--rm", *self._run_flags()])
        image = shlex.join([self.image_id[:19] or "IMAGE", *self._args()])
        return f"{run} {flags} {image}"

    def run_once(self, env: Mapping[str, str]) -> RawRun:
        assert self.ctx is not None
        name = self._name("cli")
        done = self._timed(self.run_argv(env, name, cli=True), name)
        return RawRun(done.stdout, done.wall_ns, done.returncode, stderr=done.stderr)

    def _timed(self, argv: list[str], name: str) -> proc.Completed:
        """One timed `docker run --rm`; its container is removed if the run does not end."""
        assert self.ctx is not None
        try:
            return proc.timed(argv, timeout_s=self.ctx.timeout_s, what="docker run --rm")
        except BaseException:
            with contextlib.suppress(*DOCKER_ERRORS):
                self.ctx.docker().containers.get(name).remove(force=True)
            raise


class DockerApiRuntime(_DockerBase):
    """The engine API (create, start, wait) and the container's own start/finish times."""

    name = "docker-api"
    spec = Spec(
        "Docker engine API create/start/wait (runc); engine's own StartedAt..FinishedAt",
        frozenset({"image"}),
    )
    serves = True

    def command(self, env: Mapping[str, str]) -> str:
        return (
            f"POST /containers/create (Env={sorted(f'{k}={v}' for k, v in env.items())}"
            f"{f', Cmd={self._args()}' if self._args() else ''}) "
            f"+ /start + /wait + /logs, image {self.image_id[:19] or 'IMAGE'}"
        )

    def run_once(self, env: Mapping[str, str]) -> RawRun:
        assert self.ctx is not None
        started = time.perf_counter_ns()
        container = self._create(env, "api", network_mode="none", command=self._args() or None)
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
