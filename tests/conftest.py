"""Shared test helpers. Components that setup installs must be present in CI: there a missing
one fails the test instead of skipping it (set LABREPORT_REQUIRE_ALL=1 to get that locally)."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from labreport import config
from labreport.errors import LabreportError
from labreport.host.endpoints import Endpoints
from labreport.inventory import components, leftovers

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def serving(httpd: http.server.HTTPServer) -> Iterator[str]:
    """A local HTTP server on a thread while the block runs; its base URL (no trailing /)."""
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped by whatever adopted it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def lab_copy(folder: Path, old: str = "", new: str = "") -> Path:
    """lab.toml and app/ copied into folder (a lab's paths stay inside its own folder), with
    one change to lab.toml; returns the lab.toml."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "app").exists():
        shutil.copytree(ROOT / "app", folder / "app")
    text = (ROOT / "lab.toml").read_text()
    assert old in text, old
    path = folder / "lab.toml"
    path.write_text(text.replace(old, new) if old else text)
    return path


# Where a test measures serving to see that it works, not to report it: 40 requests a level
# instead of the lab's 300 (each client, on each runtime).
SMALL_LOAD = ("load_requests = 300", "load_requests = 40")


def must_have_everything() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("LABREPORT_REQUIRE_ALL") == "1"


_components: dict[str, components.Component] = {}


def require(name: str) -> None:
    """Skip (locally) or fail (in CI) with the reason when a component is missing."""
    if not _components:
        _components.update({c.name: c for c in components.diagnose(Endpoints.from_environment())})
    component = _components[name]
    if component.found:
        return
    reason = f"{name} missing: {component.detail} ({component.hint})"
    if must_have_everything():
        pytest.fail(f"{reason}; CI expects scripts/setup to have provided it")
    pytest.skip(reason)


@pytest.fixture
def needs() -> Callable[[str], None]:
    return require


@pytest.fixture(scope="session")
def lab() -> config.LabConfig:
    return config.load(ROOT / "lab.toml")


@pytest.fixture(autouse=True)
def stops_what_it_started() -> Iterator[None]:
    """A labreport process a test started (integration/common.labreport) never outlives it,
    whatever way the test ends: the next test would find the private engine's lock held."""
    yield
    from .integration.common import stop_started

    stop_started()


def _cheap_leaks() -> set[str]:
    return {item.line() for item in leftovers.leaks(leftovers.CHEAP)} | _engine_leaks()


def _engine_leaks() -> set[str]:
    """On the host's engine, where one answers: labreport's containers, run-tagged images and
    dangling images (a build's stage images, which a later run would remove unseen)."""
    from .integration.common import engine_holds

    try:
        holds = engine_holds()
    except LabreportError:  # no engine here: the unit tests' hosts
        return set()
    return {f"engine: {kind}: {name}" for kind, names in holds.items() for name in names}


@pytest.fixture(autouse=True, scope="module")
def module_leaves_nothing(request: pytest.FixtureRequest) -> Iterator[None]:
    """The cheap part of the leak audit (processes, bundles, mounts, bridge, cgroups, what the
    host's engine holds of labreport's) around every test module, so that a leak names the
    module that made it; the test command ends with the whole audit (`labreport clean --check`).
    A shim or a cleanup process may take a moment to end, so what is new is looked at again for
    a few seconds before it counts."""
    before = _cheap_leaks()
    yield
    deadline = time.monotonic() + 10
    while (new := _cheap_leaks() - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    if new:
        pytest.fail(
            f"{request.module.__name__} left behind: " + "; ".join(sorted(new)), pytrace=False
        )
