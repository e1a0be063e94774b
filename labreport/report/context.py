"""What templates see: the lab's views (analysis/lab.py: figures, lookups and comparisons, each
computed once) and its charts, drawn by render."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from labreport.analysis.lab import LabView
from labreport.analysis.sources import Source
from labreport.report import charts
from labreport.report.charts import Chart


class Context(LabView):
    """What templates see; methods are callable from templates (compare, memory_of, chart ...)."""

    # What a template may call (report/sandbox.py allows nothing else).
    TEMPLATE_CALLS: ClassVar[frozenset[str]] = frozenset({"chart"})

    def __init__(self, sources: Sequence[Source], chart_dir: str) -> None:
        super().__init__(sources)
        self.chart_dir = chart_dir
        self.charts: dict[str, Chart] = {}  # drawn by render from these views (charts.draw)

    def chart(self, name: str) -> str:
        """Markdown for a chart: an image with alt text, or a note that there is no data."""
        found = self.charts.get(name)
        if found is None:
            return f"_No {name} chart: nothing of that kind was measured._"
        return f"![{found.alt}]({charts.link(self.chart_dir, found.name)})"
