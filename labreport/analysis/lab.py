"""The measurement files of one lab, read together once: their targets (engine and host) with
each runtime's views, the primary target's records merged (builds, images, memory, serving,
checks, commands), and the lookups and comparisons a report asks for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from labreport.analysis.serving import ServingView, serving_view
from labreport.analysis.sources import Source
from labreport.analysis.startup import (
    ComparisonView,
    RuntimeView,
    compare_views,
    group_targets,
)
from labreport.record.models import (
    ArtifactRecord,
    CapturedOutput,
    CheckRecord,
    ImageRecord,
    MemoryRecord,
)


class LabView:
    """One lab's files; every figure a report shows is computed here or in the views it holds."""

    # What a template may call (report/sandbox.py allows nothing else).
    TEMPLATE_CALLS: ClassVar[frozenset[str]] = frozenset(
        {
            "across_targets",
            "artifact",
            "check",
            "compare",
            "image",
            "image_rows",
            "measured",
            "memory_of",
            "memory_rows",
            "output_of",
            "runtime",
            "serving_levels",
            "serving_of",
            "serving_ratio",
            "startup_rows",
            "unmeasured",
            "unmeasured_rows",
        }
    )

    def __init__(self, sources: Sequence[Source]) -> None:
        first = sources[0].measurement
        self.sources = sources
        self.lab = first.lab
        self.title = first.title
        self.partial = [s.path for s in sources if s.measurement.partial]
        self.environment = first.environment
        self.environments = {s.path: s.measurement.environment for s in sources}
        # The first target is the primary one: single-target sections and the answers use it;
        # further targets appear beside it in the tables and in the comparison across targets.
        self.targets = group_targets(sources)
        self.multi = len(self.targets) > 1
        primary = self.targets[0]
        self.runtimes = primary.runtimes
        self.artifacts: dict[str, ArtifactRecord] = {}
        self.skipped_builds: dict[str, str] = {}  # optional builds no source made, and why
        self.images: dict[str, ImageRecord] = {}
        self.memory: list[MemoryRecord] = []
        self.serving: list[ServingView] = []
        self.checks: list[CheckRecord] = []
        self.commands: list[str] = []
        # What each runtime printed (its first checked run); kept only by newer files.
        self.outputs_kept = all(s.measurement.outputs_kept for s in primary.sources)
        self.modes = list(first.modes)  # the lab's declared modes: cli, server, wagi
        self.cli_env = dict(first.cli_env)  # the CLI mode's environment, where the file has it
        self.cli_args = list(first.cli_args)  # and its arguments
        self.outputs: dict[str, CapturedOutput] = {}
        for source in primary.sources:
            result = source.measurement
            for artifact in result.artifacts:
                self.artifacts.setdefault(artifact.name, artifact)
            for image in result.images:
                self.images.setdefault(image.name, image)
            for name, reason in result.skipped_builds.items():
                self.skipped_builds.setdefault(name, reason)
            self.memory += result.memory
            self.serving += [serving_view(record) for record in result.serving]
            self.checks += result.checks
            for output in result.outputs:
                self.outputs.setdefault(output.runtime, output)
            self.commands += [c for c in result.commands if c not in self.commands]
        for name in self.artifacts:
            self.skipped_builds.pop(name, None)
        self.runs = first.runs
        self.warmup = first.warmup
        self._comparisons: dict[tuple[str, str], ComparisonView | None] = {}

    # -- lookups (templates call them) ----------------------------------------------------

    def measured(self) -> list[RuntimeView]:
        return [v for v in self.runtimes.values() if v.measured_ok]

    def output_of(self, runtime: str) -> CapturedOutput | None:
        """What the runtime's first checked CLI run printed, where the file kept it."""
        return self.outputs.get(runtime)

    def startup_rows(self) -> list[RuntimeView]:
        """Every target's measured runtimes, the same runtime's targets side by side."""
        order = {name: index for index, name in enumerate(self._all_names())}
        rows = [v for t in self.targets for v in t.runtimes.values() if v.measured_ok]
        return sorted(rows, key=lambda view: order[view.name])  # stable: targets stay in order

    def unmeasured_rows(self) -> list[RuntimeView]:
        return [v for t in self.targets for v in t.runtimes.values() if not v.measured_ok]

    def _all_names(self) -> list[str]:
        names: list[str] = []
        for target in self.targets:
            names += [name for name in target.runtimes if name not in names]
        return names

    def image_rows(self) -> list[tuple[str, ImageRecord]]:
        """Each target's images, one row per image name (its first file's)."""
        rows = []
        for target in self.targets:
            images: dict[str, ImageRecord] = {}
            for source in target.sources:
                for image in source.measurement.images:
                    images.setdefault(image.name, image)
            rows += [(target.short, image) for image in images.values()]
        return rows

    def memory_rows(self) -> list[tuple[str, MemoryRecord]]:
        return [
            (target.short, record)
            for target in self.targets
            for source in target.sources
            for record in source.measurement.memory
        ]

    def across_targets(self) -> list[ComparisonView]:
        """Each runtime on every further target against the primary one (unpaired)."""
        primary, rows = self.targets[0], []
        for target in self.targets[1:]:
            for name, view in target.runtimes.items():
                base = primary.runtimes.get(name)
                if view.startup is None or base is None or base.startup is None:
                    continue
                rows.append(
                    compare_views(
                        view, base, f"{name} on {target.short}", f"{name} on {primary.short}"
                    )
                )
        return rows

    def unmeasured(self) -> list[RuntimeView]:
        return [v for v in self.runtimes.values() if not v.measured_ok]

    def runtime(self, name: str) -> RuntimeView | None:
        view = self.runtimes.get(name)
        return view if view is not None and view.measured_ok else None

    def compare(self, a: str, b: str) -> ComparisonView | None:
        """Startup of a against b; None when either was not measured.

        Runtimes of one file ran in the same interleaved rounds, so their samples pair by
        round; runtimes from different files do not pair.
        """
        key = (a, b)
        if key not in self._comparisons:
            self._comparisons[key] = self._compare(a, b)
        return self._comparisons[key]

    def _compare(self, a: str, b: str) -> ComparisonView | None:
        left, right = self.runtime(a), self.runtime(b)
        if left is None or right is None:
            return None
        return compare_views(left, right, a, b)

    def memory_of(self, runtime: str, mode: str) -> MemoryRecord | None:
        return next((m for m in self.memory if m.runtime == runtime and m.mode == mode), None)

    def serving_of(self, runtime: str, model: str = "") -> ServingView | None:
        """How runtime served (its first record, or the one of this model)."""
        return next(
            (v for v in self.serving if v.runtime == runtime and model in ("", v.record.model)),
            None,
        )

    def serving_levels(self) -> list[int]:
        """Every concurrency some runtime was loaded at, in order."""
        return sorted({level.concurrency for view in self.serving for level in view.levels})

    def serving_ratio(self, a: str, b: str, concurrency: int, what: str = "p50_ms") -> float | None:
        """a's figure over b's at one concurrency (labels as ServingView.label); None when
        either is missing or not every request of either passed."""
        found = {view.label: view for view in self.serving}
        left, right = found.get(a), found.get(b)
        if left is None or right is None or not (left.ok and right.ok):
            return None
        la, lb = left.level(concurrency), right.level(concurrency)
        x = getattr(la, what, None) if la else None
        y = getattr(lb, what, None) if lb else None
        return x / y if x and y else None

    def check(self, name: str, runtime: str) -> CheckRecord | None:
        return next((c for c in self.checks if c.name == name and c.runtime == runtime), None)

    def artifact(self, name: str) -> ArtifactRecord | None:
        return self.artifacts.get(name)

    def image(self, name: str) -> ImageRecord | None:
        return self.images.get(name)
