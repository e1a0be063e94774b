"""`labreport cache`: the caching wasmtime shim's compiled modules, listed or cleared."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labreport.host import shim_cache


@dataclass(frozen=True)
class Listing:
    folder: Path
    entries: list[shim_cache.Entry]

    @property
    def size_bytes(self) -> int:
        return sum(entry.size_bytes for entry in self.entries)

    def text(self) -> str:
        lines = [f"{self.folder}: {len(self.entries)} compiled module(s), {self.size_bytes:,} B"]
        lines += [
            f"  module {entry.module_sha256}  engine {entry.engine_hash}  {entry.size_bytes:,} B"
            for entry in self.entries
        ]
        return "\n".join(lines)


def entries() -> Listing:
    root = shim_cache.cache_dir()
    return Listing(root, shim_cache.entries(root))


def cleared() -> str:
    """Every compiled module and phase record removed; says how much."""
    root = shim_cache.cache_dir()
    files, size = shim_cache.clear(root)
    return f"removed {files} file(s), {size:,} B, from {root}"
