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


def entries() -> Listing:
    root = shim_cache.cache_dir()
    return Listing(root, shim_cache.entries(root))


def clear() -> tuple[Path, int, int]:
    """Every compiled module and phase record removed: (folder, files, bytes)."""
    root = shim_cache.cache_dir()
    files, size = shim_cache.clear(root)
    return root, files, size
