"""The Jinja filters of the report (and the terminal tables): numbers with their units."""

from __future__ import annotations

import re


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "not measured"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.2f} ms"


def fmt_bytes(value: int | None) -> str:
    return "not measured" if value is None else f"{value:,} B"


def fmt_mib(value: int | None) -> str:
    return "not measured" if value is None else f"{value / 1048576:.2f} MiB"


def fmt_pct(value: float) -> str:
    return f"{value:+,.1f} %"


def fmt_times(value: float) -> str:
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def fenced(text: str, info: str = "text") -> str:
    """text as a Markdown code block whose fence no run of backticks in it can close."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text.rstrip(chr(10))}\n{fence}"


def is_wasm(name: str) -> bool:
    """The WASM side of the lab, by labreport's own names: a runtime (ctr-wasmtime,
    docker-wasm-aot, ...) or a build (wasm, wasm-tinygo). Charts colour by it; templates ask
    `name is wasm`."""
    return "wasm" in name
