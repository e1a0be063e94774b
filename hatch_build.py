"""The wheel's build hook: puts what labreport reads at run time (labreport/bundle.py's BUNDLED:
the templates, the built-in labs, the shim crate) inside the package, file by file, so that the
wheel is what the repository holds and never a build's leftovers beside it."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class BundleHook(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        spec = importlib.util.spec_from_file_location("_bundle", root / "labreport" / "bundle.py")
        assert spec is not None and spec.loader is not None
        bundle = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = bundle  # its dataclasses look their module up
        spec.loader.exec_module(bundle)
        build_data["force_include"].update(bundle.wheel_files(root))
        # The default lab's name, in a file of the wheel's own (removed after the build).
        self._marker = Path(tempfile.mkdtemp(prefix="labreport-wheel-")) / bundle.DEFAULT_MARKER
        self._marker.write_text(bundle.default_lab(root) + "\n")
        build_data["force_include"][str(self._marker)] = (
            f"labreport/_data/{bundle.LABS_DIR}/{bundle.DEFAULT_MARKER}"
        )

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        marker = getattr(self, "_marker", None)
        if marker is not None:
            shutil.rmtree(marker.parent, ignore_errors=True)
