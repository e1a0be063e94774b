"""Charts as SVG text, byte-for-byte the same for the same data (fixed hash salt, no date)."""

from __future__ import annotations

import hashlib
import io
import re
import statistics
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib
import numpy as np

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from labreport.analysis.lab import LabView

LOG_SCALE_SPREAD = 20  # use a log axis when the largest median is this many times the smallest
MAX_DOTS = 300  # per runtime; beyond that, evenly spaced quantiles stand for the runs
MiB = 1024 * 1024


# labreport's chart file names: kind-<12 hex>.svg (before they were named by content: kind.svg).
CHART_NAME = re.compile(r"^[a-z]+(-[0-9a-f]{12})?\.svg$")


def link(folder: str, name: str) -> str:
    """A chart's link in Markdown: its folder percent-encoded (a space in `my report/` would end
    the link in CommonMark), the name as drawn (letters, digits, '-')."""
    return f"{urllib.parse.quote(folder, errors='surrogateescape')}/{name}"


@dataclass(frozen=True)
class Chart:
    kind: str  # startup, sizes, memory, serving
    alt: str  # alt text for report.md
    svg: str

    @property
    def name(self) -> str:
        """The file name, named by its content (startup-<12 hex>.svg): a new chart never
        overwrites one that an older report links to, so report.md's rename alone commits."""
        return f"{self.kind}-{hashlib.sha256(self.svg.encode()).hexdigest()[:12]}.svg"


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    with plt.rc_context({"svg.hashsalt": "labreport", "svg.fonttype": "path"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": "labreport"})
    plt.close(figure)
    return buffer.getvalue()


def dots(values: Sequence[float], limit: int = MAX_DOTS) -> list[float]:
    """Every value, or at most limit evenly spaced quantiles of them (min and max included)."""
    if len(values) <= limit:
        return list(values)
    ordered = np.sort(np.asarray(values, dtype=float))
    return [float(v) for v in ordered[np.linspace(0, ordered.size - 1, limit).round().astype(int)]]


def startup(samples_ms: Mapping[str, Sequence[float]]) -> Chart:
    """A box per runtime with every valid sample (or MAX_DOTS quantiles of them) drawn over it."""
    names = list(samples_ms)
    figure, axes = plt.subplots(figsize=(8, 0.6 * len(names) + 1.6))
    data = [list(samples_ms[name]) for name in names]
    axes.boxplot(data, orientation="horizontal", tick_labels=names, showfliers=False, widths=0.5)
    for row, values in enumerate(data, start=1):
        shown = dots(values)
        jitter = [row + ((i % 5) - 2) * 0.05 for i in range(len(shown))]
        axes.plot(shown, jitter, "o", markersize=3, alpha=0.6, color="tab:blue")
    medians = sorted(statistics.median(v) for v in data if v)
    log = bool(medians) and medians[-1] / max(medians[0], 1e-9) >= LOG_SCALE_SPREAD
    if log:
        axes.set_xscale("log")
    axes.set_xlabel("spawn-to-exit time, ms" + (" (log scale)" if log else ""))
    axes.set_title("Startup of the CLI mode, valid runs")
    axes.invert_yaxis()
    axes.grid(axis="x", alpha=0.3, which="both")
    figure.tight_layout()
    alt = "Startup time per runtime, box plot with every valid run: " + ", ".join(
        f"{name} median {statistics.median(v):.1f} ms"
        for name, v in zip(names, data, strict=True)
        if v
    )
    return Chart("startup", alt, _svg(figure))


def sizes(groups: dict[str, dict[str, int]]) -> Chart:
    """Grouped bars: for each artifact kind (binary, image content, layers, archive) a bar per
    variant."""
    kinds = list(groups)
    variants = sorted({v for sizes in groups.values() for v in sizes})
    figure, axes = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / max(1, len(variants))
    for index, variant in enumerate(variants):
        xs = [k + index * width for k in range(len(kinds))]
        heights = [groups[kind].get(variant, 0) / MiB for kind in kinds]
        bars = axes.bar(xs, heights, width, label=variant)
        axes.bar_label(bars, labels=[f"{h:.2f}" if h else "" for h in heights], fontsize=7)
    axes.set_xticks([k + width * (len(variants) - 1) / 2 for k in range(len(kinds))], kinds)
    axes.set_ylabel("MiB")
    axes.set_title("Sizes (each measured as its label says)")
    axes.legend()
    figure.tight_layout()
    alt = "Sizes in MiB: " + "; ".join(
        f"{kind}: " + ", ".join(f"{v} {groups[kind][v] / MiB:.2f}" for v in groups[kind])
        for kind in kinds
    )
    return Chart("sizes", alt, _svg(figure))


def memory(bars: dict[str, int]) -> Chart:
    """One horizontal bar per (runtime, what) reading."""
    labels = list(bars)
    figure, axes = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.4))
    values = [bars[label] / MiB for label in labels]
    drawn = axes.barh(labels, values, color="tab:green")
    axes.bar_label(drawn, labels=[f"{v:.2f}" for v in values], fontsize=7, padding=2)
    axes.invert_yaxis()
    axes.set_xlabel("MiB")
    axes.set_title("Memory (methods differ: see the table)")
    figure.tight_layout()
    alt = "Memory in MiB: " + ", ".join(
        f"{label} {value:.2f}" for label, value in zip(labels, values, strict=True)
    )
    return Chart("memory", alt, _svg(figure))


def serving(p50_ms: Mapping[str, Mapping[int, float]]) -> Chart:
    """Median latency per runtime (a line each) against concurrency, log scales."""
    figure, axes = plt.subplots(figsize=(8, 4.2))
    levels = sorted({c for by_level in p50_ms.values() for c in by_level})
    for name, by_level in p50_ms.items():
        xs = [c for c in levels if c in by_level]
        axes.plot(xs, [by_level[c] for c in xs], "o-", label=name, markersize=4)
    axes.set_xscale("log", base=2)
    axes.set_xticks(levels, [str(c) for c in levels])
    axes.set_yscale("log")
    axes.set_xlabel("concurrent clients")
    axes.set_ylabel("median latency, ms (log scale)")
    axes.set_title("Serving: median latency of checked requests")
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize=7)
    figure.tight_layout()
    alt = "Median serving latency in ms per runtime and concurrency: " + "; ".join(
        f"{name} " + ", ".join(f"c{c} {ms:.2f}" for c, ms in sorted(by_level.items()))
        for name, by_level in p50_ms.items()
    )
    return Chart("serving", alt, _svg(figure))


def draw(view: LabView) -> dict[str, Chart]:
    """Every chart the lab's files give data for, by kind."""
    made: dict[str, Chart] = {}
    timed = {
        (f"{v.name} @ {v.target}" if view.multi else v.name): v.valid_ms
        for v in view.startup_rows()
    }
    if timed:
        made["startup"] = startup(timed)
    groups: dict[str, dict[str, int]] = {}
    for artifact in view.artifacts.values():
        if artifact.origin == "host-build":
            groups.setdefault("binary / module", {})[artifact.name] = artifact.size_bytes
    for target_short, image in view.image_rows():
        name = f"{image.name} @ {target_short}" if view.multi else image.name
        groups.setdefault("image content", {})[name] = image.content_size_uncompressed_bytes
        groups.setdefault("layers, gzip", {})[name] = image.layers_size_compressed_bytes
        groups.setdefault("image archive", {})[name] = image.archive_size_bytes
    if groups:
        made["sizes"] = sizes(groups)
    bars: dict[str, int] = {}
    for target_short, record in view.memory_rows():
        who = f"{record.runtime} @ {target_short}" if view.multi else record.runtime
        idle = record.idle_median_bytes()
        if idle is not None:
            bars[f"{who}: server idle"] = idle
        if record.peak_bytes:
            bars[f"{who}: {record.mode} peak"] = record.peak_bytes
        if record.linear_memory_bytes:
            bars[f"{who}: linear memory"] = record.linear_memory_bytes
    if bars:
        made["memory"] = memory(bars)
    latency = {
        served.label: {lv.concurrency: lv.p50_ms for lv in served.levels if lv.p50_ms}
        for served in view.serving
        if served.ok
    }
    if any(latency.values()):
        made["serving"] = serving({k: v for k, v in latency.items() if v})
    return made
