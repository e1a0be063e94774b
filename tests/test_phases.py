"""The shim's phases as medians: a phase that a start did not pass counts as no time there."""

from __future__ import annotations

from labreport.analysis.phases import median_phases
from labreport.record.models import ShimPhase


def start(**phases: float) -> list[ShimPhase]:
    return [ShimPhase(name=name, ns=int(ms * 1e6)) for name, ms in phases.items()]


def test_a_phase_most_starts_skip_is_left_out_not_given_the_few_starts_median() -> None:
    """One start hashed its module (10 ms), nine found it known: no hashing phase of 10 ms."""
    runs = [start(engine=0.2, key=10.0, load=1.0)] + [start(engine=0.2, load=0.5)] * 9
    views = {view.name: view.median_ms for view in median_phases(runs)}
    assert views == {"engine": 0.2, "load": 0.5}


def test_a_phase_half_the_starts_pass_has_its_median_over_all_of_them() -> None:
    runs = [start(key=4.0), start(key=6.0), start(), start()]
    assert [(v.name, v.median_ms) for v in median_phases(runs)] == [("key", 2.0)]
