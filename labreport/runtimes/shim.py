"""The wasmtime shim's side of a runtime's starts, for the runtimes that start a shim (through
ctr or through Docker): a part they are given, not a class they derive from.

Every timed start asks the shim for its timeline (LABREPORT_PHASES=<token>, the token being the
container's name) and reads it back. On the caching shim, the module's cache entry is removed
before the runtime's first start, so that start really compiles and stores, and again at
cleanup, so a measurement leaves no entry behind. Both only where the shim runs on this host: a
remote engine's shim keeps its records and cache on its own host.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

from labreport.host import fsutil, shim_cache
from labreport.host.proc import Completed
from labreport.host.shims import Shim
from labreport.record.models import Detail, ShimPhase, ShimRecord
from labreport.runtimes.base import RunContext


class ShimStarts:
    """The starts of one runtime on one shim."""

    def __init__(self, shim: Shim) -> None:
        self.shim = shim
        self.local = True  # the shim runs on this host (not behind a remote engine)
        self.module_sha256 = ""
        self.cache_before_first_start = ""

    def missing(self) -> str:
        """Why the shim cannot start on this host ("" when its binary is installed)."""
        if self.shim.find() is None:
            return f"{self.shim.binary} not installed (run `labreport setup --shims`)"
        return ""

    def prepare(self, ctx: RunContext, local: bool = True) -> None:
        self.local = local
        module = ctx.built.files[ctx.config.wasm_image.build]
        self.module_sha256 = fsutil.sha256_file(module)

    @staticmethod
    def env(env: Mapping[str, str], token: str) -> dict[str, str]:
        """The run's environment, asking the shim for its record under token."""
        return {**env, shim_cache.PHASES_ENV: token}

    def start(
        self, env: Mapping[str, str], token: str, timed: Callable[[dict[str, str]], Completed]
    ) -> tuple[Completed, ShimRecord | None]:
        """One timed start through `timed` (given the run's environment) that asks the shim
        for its record under token, and reads it back; a start that did not end normally
        leaves no record behind."""
        self._before_first_start()
        try:
            done = timed(self.env(env, token))
        except BaseException:
            self._discard_record(token)
            raise
        return done, self._record(token, done.started_ns, done.wall_ns)

    def _before_first_start(self) -> None:
        """Before the runtime's first timed start: an empty cache for this module."""
        if not self.shim.cached or self.cache_before_first_start or not self.local:
            return
        try:
            removed = shim_cache.forget(self.module_sha256)
            self.cache_before_first_start = (
                f"emptied (removed {removed} entr{'y' if removed == 1 else 'ies'})"
                if removed else "empty"
            )  # fmt: skip
        except OSError as error:
            self.cache_before_first_start = f"could not be emptied: {error.strerror}"

    def _record(self, token: str, started_ns: int, wall_ns: int) -> ShimRecord | None:
        if not self.local:
            return None
        try:
            timeline = shim_cache.take_record(token)
        except OSError:
            return None
        if timeline is None:
            return None
        phases = shim_cache.phases_ns(timeline, started_ns, wall_ns)
        return ShimRecord(
            shim=timeline.shim,
            phases=[ShimPhase(name=name, ns=ns) for name, ns in phases],
            facts=timeline.facts,
        )

    @staticmethod
    def _discard_record(token: str) -> None:
        """After a start that did not end normally (its task removed): the record it may have
        written before it was removed. Nothing can write it later: the task is gone."""
        with contextlib.suppress(OSError, ValueError):
            shim_cache.take_record(token)

    def cleanup(self, token_prefix: str) -> None:
        """The run's leftover records, and (caching shim) the module's entry; records that
        earlier runs, killed before their cleanup, left are removed after an hour."""
        if not self.local:
            return
        with contextlib.suppress(OSError):
            shim_cache.sweep_records(token_prefix)
            shim_cache.sweep_records("labreport-", older_than_s=3600)
        if self.shim.cached and self.module_sha256:
            with contextlib.suppress(OSError):
                shim_cache.forget(self.module_sha256)

    def details(self) -> dict[str, Detail]:
        details: dict[str, Detail] = {"module_compilation": self.shim.compiles}
        if self.shim.cached and self.module_sha256:
            details["module_sha256"] = self.module_sha256
        if self.cache_before_first_start:
            details["cache_before_first_start"] = self.cache_before_first_start
        return details
