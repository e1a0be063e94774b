"""The shims' own timelines of their starts, and containerd's events, as medians per phase:
where a start spends its time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from labreport.analysis import stats
from labreport.record.models import Sample, ShimPhase

# The shims' marks in the order a start passes them (shim/src/lib.rs), then the client's return.
PHASE_ORDER = (
    "shim_main", "run_wasi", "engine", "open", "read", "key", "compile", "store", "load",
    "instantiate", "exit", "client_return",
)  # fmt: skip


@dataclass(frozen=True)
class PhaseView:
    """One phase of a start as the shim timed it: its median over a set of starts."""

    name: str
    median_ms: float


@dataclass
class ShimView:
    """What the wasmtime shim recorded about a runtime's starts.

    `phases` are the medians over the counted, checked starts the shim served the usual way
    (from its cache on the caching shim, compiling on the other): `basis` says which and how
    many. `first` is the first start's own breakdown (round 0: the compile-and-store start on
    the caching shim). `outcomes` counts every start's cache outcome, warm-ups included.
    """

    # What a template may call (report/sandbox.py allows nothing else).
    TEMPLATE_CALLS: ClassVar[frozenset[str]] = frozenset({"phase", "rows"})

    basis: str
    count: int
    phases: list[PhaseView]
    first: list[PhaseView]
    first_cache: str
    outcomes: dict[str, int]
    misses: list[str]  # the reasons of counted starts that missed the cache

    @property
    def total_ms(self) -> float:
        return sum(p.median_ms for p in self.phases)

    def rows(self) -> list[tuple[str, float | None, float | None]]:
        """(phase, first start's ms, median ms) in the order a start goes through them."""
        first = {p.name: p.median_ms for p in self.first}
        usual = {p.name: p.median_ms for p in self.phases}
        names = [n for n in PHASE_ORDER if n in first or n in usual]
        names += [n for n in [*first, *usual] if n not in names]
        return [(name, first.get(name), usual.get(name)) for name in dict.fromkeys(names)]

    def phase(self, name: str) -> float | None:
        return next((p.median_ms for p in self.phases if p.name == name), None)


def median_phases(runs: Sequence[Sequence[ShimPhase]]) -> list[PhaseView]:
    """Each phase's median over runs, in the order the runs give them. A run that did not pass
    a phase spent nothing there (0 ms): a cached start that found its module file known has no
    hashing phase. A phase that fewer than half the runs passed is left out (its median is 0)."""
    names: list[str] = []
    for phases in runs:
        names += [p.name for p in phases if p.name not in names]
    views = []
    for name in names:
        values = [sum(p.ns for p in r if p.name == name) / 1e6 for r in runs]
        if 2 * sum(1 for r in runs if any(p.name == name for p in r)) >= len(runs):
            views.append(PhaseView(name, stats.summarize(values).median))
    return views


def shim_view(samples: Sequence[Sample]) -> ShimView | None:
    recorded = [s for s in samples if s.shim is not None]
    if not recorded:
        return None
    outcomes: dict[str, int] = {}
    for sample in recorded:
        assert sample.shim is not None
        outcomes[sample.shim.cache or "unknown"] = (
            outcomes.get(sample.shim.cache or "unknown", 0) + 1
        )
    usual = "hit" if "hit" in outcomes else "off"
    counted = [s.shim for s in recorded if not s.warmup and s.ok and s.shim and s.shim.phases]
    basis_records = [r for r in counted if r.cache == usual]
    phases = median_phases([r.phases for r in basis_records])
    first = next((s for s in recorded if s.round == 0 and s.warmup), recorded[0])
    assert first.shim is not None
    return ShimView(
        basis={"hit": "cached starts", "off": "starts"}[usual],
        count=len(basis_records),
        phases=phases,
        first=[PhaseView(p.name, p.ns / 1e6) for p in first.shim.phases],
        first_cache=first.shim.facts.get("cache", ""),
        outcomes=dict(sorted(outcomes.items())),
        misses=sorted({r.facts.get("cache", "") for r in counted if r.cache == "miss"}),
    )
