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
from labreport.report.filters import is_wasm

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


@dataclass(frozen=True)
class MemoryPanel:
    """Readings taken by one method, so comparable with each other: per runtime, a value for
    each kind of reading (a CLI run's peak; a server idle and under load)."""

    title: str
    rows: dict[str, dict[str, int]]  # runtime -> reading kind -> bytes


TRADITIONAL_COLOUR, WASM_COLOUR = "tab:blue", "tab:orange"
READING_ALPHA = {"idle (median)": 0.45}  # lighter beside the reading under load


def memory(panels: Sequence[MemoryPanel]) -> Chart:
    """A panel per method: only readings of one method are ever beside each other; in a panel,
    a row per runtime (traditional and WASM in two colours) and a bar per kind of reading."""
    heights = [len(panel.rows) * max(len(kinds) for kinds in panel.rows.values()) + 1.5
               for panel in panels]  # fmt: skip
    figure, axes_list = plt.subplots(
        len(panels), 1, figsize=(8, 0.28 * sum(heights) + 0.9),
        gridspec_kw={"height_ratios": heights}, squeeze=False,
    )  # fmt: skip
    for axes, panel in zip(axes_list[:, 0], panels, strict=True):
        kinds = list(dict.fromkeys(k for readings in panel.rows.values() for k in readings))
        width = 0.8 / len(kinds)
        names = list(panel.rows)
        for index, kind in enumerate(kinds):
            ys = [row + index * width for row in range(len(names))]
            values = [panel.rows[name].get(kind, 0) / MiB for name in names]
            colours = [WASM_COLOUR if is_wasm(n) else TRADITIONAL_COLOUR for n in names]
            drawn = axes.barh(ys, values, width, color=colours, alpha=READING_ALPHA.get(kind, 1))
            labels = [
                (f"{v:.2f} {kind}" if len(kinds) > 1 else f"{v:.2f}") if v else "" for v in values
            ]
            axes.bar_label(drawn, labels=labels, fontsize=7, padding=2)
        axes.set_yticks([row + width * (len(kinds) - 1) / 2 for row in range(len(names))], names)
        axes.invert_yaxis()
        axes.set_title(panel.title, fontsize=9, loc="left")
        axes.margins(x=0.35)
        axes.tick_params(labelsize=8)
    axes_list[-1, 0].set_xlabel("MiB (blue: traditional, orange: WASM)")
    figure.tight_layout()
    alt = "Memory in MiB, one panel per method: " + "; ".join(
        f"{panel.title}: "
        + ", ".join(
            f"{name} " + " / ".join(f"{kind} {value / MiB:.2f}" for kind, value in kinds.items())
            for name, kinds in panel.rows.items()
        )
        for panel in panels
    )
    return Chart("memory", alt, _svg(figure))


def _method(text: str) -> str:
    """A method's name, without its particulars: 'task cgroup peak usage incl. page cache'."""
    return text.split(" (", maxsplit=1)[0].split(", ", maxsplit=1)[0]


def memory_panels(view: LabView) -> list[MemoryPanel]:
    """The lab's memory readings grouped by mode and exact method: a CLI run's first, then the
    server's, each in the order read."""
    panels: dict[tuple[str, str], dict[str, dict[str, int]]] = {}

    def add(title: str, method: str, who: str, kind: str, value: int | None) -> None:
        if value:
            panels.setdefault((title, method), {}).setdefault(who, {})[kind] = value

    rss_peak = "peak resident set size of the serving process, read by the host"
    for target_short, record in view.memory_rows():
        who = f"{record.runtime} @ {target_short}" if view.multi else record.runtime
        if record.mode == "once":
            if record.linear_memory_bytes:
                add("one CLI run", record.method, who, "at exit", record.linear_memory_bytes)
            else:
                add("one CLI run", record.peak_method or record.method, who, "peak",
                    record.peak_bytes)  # fmt: skip
            continue
        add("server", record.method, who, "idle (median)", record.idle_median_bytes())
        add("server", record.method, who, "under load (max)", record.load_max_bytes())
        add("server", rss_peak, who, "peak", record.process_peak_rss_bytes)
    cli_first = sorted(panels.items(), key=lambda item: item[0][0] != "one CLI run")
    return [MemoryPanel(f"{title}: {_method(method)}", rows) for (title, method), rows in cli_first]


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
    panels = memory_panels(view)
    if panels:
        made["memory"] = memory(panels)
    latency = {
        served.label: {lv.concurrency: lv.p50_ms for lv in served.levels if lv.p50_ms}
        for served in view.serving
        if served.ok
    }
    if any(latency.values()):
        made["serving"] = serving({k: v for k, v in latency.items() if v})
    return made
