"""labreport's two wasmtime shims (shim/): which runtime name maps to which binary, and where
setup installs them. Their file cache and phase records are in shim_cache.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labreport.host import paths

# containerd starts shims from its own PATH; setup installs them here.
SHIM_DIR = Path("/usr/local/bin")


@dataclass(frozen=True)
class Shim:
    """A containerd shim of labreport's shim crate: containerd maps runtime to binary."""

    runtime: str
    binary: str
    compiles: str  # when the module is compiled, as the report says it
    cached: bool = False  # keeps compiled modules in its file cache (labreport/host/shim_cache.py)

    @property
    def name(self) -> str:
        """The shim's own name (io.containerd.<name>.v1), which keys its precompile cache."""
        return self.runtime.split(".")[-2]

    def find(self) -> Path | None:
        found = paths.which(self.binary)
        if found is None and (SHIM_DIR / self.binary).is_file():
            found = SHIM_DIR / self.binary
        return found


WASMTIME_SHIM = Shim(
    "io.containerd.wasmtime.v1",
    "containerd-shim-wasmtime-v1",
    "at every start (module in the rootfs layer)",
)
WASMTIME_AOT_SHIM = Shim(
    "io.containerd.wasmtime-aot.v1",
    "containerd-shim-wasmtime-aot-v1",
    "once per module, at its first start; later starts map the compiled code that the shim "
    "stored in its file cache (keyed by the module's sha256 and the engine's compatibility hash)",
    cached=True,
)
SHIMS = (WASMTIME_SHIM, WASMTIME_AOT_SHIM)
