"""`labreport setup`: the system parts labreport uses beside Python, each step idempotent, each
saying what it took and what it costs, or why it was skipped and what that costs.

- packages: Debian/Ubuntu packages (ctr, buildah, hyperfine, hey, the shim build's libraries,
  clang to WASI, pipx), through apt as root or `sudo -n`;
- engine: the private Docker 26 engine with the containerd image store, fetched from Debian 13
  into the state directory (unpacked, never installed; labreport starts and stops it);
- shims: the wasmtime shims, built with cargo from the crate labreport carries, installed where
  containerd finds them;
- browser (only when named): Chromium and its driver, for the test suite's check of the report
  as a browser shows it.

It never starts, stops or reconfigures the host's own Docker engine."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labreport import bundle
from labreport.errors import MissingComponentsError
from labreport.host import engine_layout, packages, paths, shim_build

STEPS = ("packages", "engine", "shims")  # what setup does when no step is named
OPTIONAL_STEPS = ("browser",)  # only when named
SHIMS_COST = "the ctr-wasmtime* and docker-wasm* runtimes are unavailable"
ENGINE_COST = (
    "the docker-wasm* runtimes need an engine with the containerd image store: the host's, "
    "where it has one (Docker 29's default), else none"
)
PACKAGES_COST = "what needs them is unavailable (ctr, buildah, hyperfine, hey, the shim build)"
BROWSER_COST = "the test suite cannot check the report in a browser (labreport itself needs none)"


@dataclass(frozen=True)
class Step:
    """One step's outcome: done (it acted), present (nothing to do), built (not installed),
    or skipped, with what it took or what skipping costs."""

    name: str
    outcome: str
    detail: str
    seconds: float | None = None

    def line(self) -> str:
        took = f" ({self.seconds:.0f} s)" if self.seconds is not None else ""
        return f"{self.name}: {self.outcome}{took}: {self.detail}"


def _size(folder: Path) -> str:
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    return f"{total / 1e6:,.0f} MB in {folder}"


def step_packages(
    name: str = "packages", wanted: tuple[str, ...] = packages.APT_PACKAGES,
    cost: str = PACKAGES_COST, elsewhere: str = "",
) -> Step:  # fmt: skip
    if not packages.has_apt():
        elsewhere = elsewhere or (
            f"the commands {', '.join(packages.COMMANDS)} (clang with WASI's libc), and Rust "
            "with rustup; `labreport doctor` names what is missing"
        )
        return Step(
            name, "skipped",
            f"not a Debian/Ubuntu system (no apt-get): install with your distribution's packages "
            f"{elsewhere}; until then {cost}",
        )  # fmt: skip
    absent = packages.missing(wanted)
    if not absent:
        return Step(name, "present", " ".join(wanted))
    runner = packages.as_root()
    if runner is None:
        return Step(
            name, "skipped",
            f"needs root, and sudo -n is not available: run `sudo apt-get install "
            f"{' '.join(absent)}`; until then {cost}",
        )  # fmt: skip
    started = time.monotonic()
    packages.install(absent, runner)
    return Step(name, "done", f"installed {' '.join(absent)}", time.monotonic() - started)


def step_browser() -> Step:
    """Chromium and its driver: only the test suite's check of the report in a browser uses
    them (not asked for by default)."""
    return step_packages(
        "browser", packages.BROWSER_PACKAGES, BROWSER_COST, "Chromium and its chromedriver"
    )


def step_engine() -> Step:
    present = packages.engine_present()
    if present:
        return Step("engine", "present", present)
    if not paths.is_root():
        return Step(
            "engine", "skipped",
            f"the private engine runs as root only (run `sudo labreport setup --engine`); "
            f"{ENGINE_COST}",
        )  # fmt: skip
    if not packages.has_apt():
        return Step("engine", "skipped", f"it is fetched with apt, which is missing; {ENGINE_COST}")
    started = time.monotonic()
    version = packages.fetch_engine()
    took = time.monotonic() - started
    return Step("engine", "done", f"{version}, {_size(engine_layout.layout().package)}", took)


def step_shims(say: Callable[[str], None]) -> Step:
    if paths.which("cargo") is None:
        return Step(
            "shims", "skipped",
            f"cargo not found: install Rust with rustup, then `labreport setup --shims`; "
            f"until then {SHIMS_COST}",
        )  # fmt: skip
    manifest = bundle.bundled("shim") / "Cargo.toml"
    say(
        f"shims: building {manifest.parent} with cargo into {shim_build.target_dir()} "
        "(a cold build takes about 7 min on 2 cores; a warm one seconds)"
    )
    seconds = shim_build.build(manifest, say)
    installed = shim_build.install_shims()
    outcomes = {shim.outcome for shim in installed}
    outcome = "built" if "built" in outcomes else "done" if "installed" in outcomes else "present"
    detail = "; ".join(f"{shim.binary} {shim.outcome} {shim.detail}" for shim in installed)
    if outcome == "built":
        detail += f" (until installed, {SHIMS_COST})"
    return Step("shims", outcome, f"{detail}; {_size(shim_build.target_dir())}", seconds)


def run(chosen: dict[str, bool], say: Callable[[str], None]) -> list[Step]:
    """The chosen steps (all when none is), in order: the shim build needs the packages'
    libraries. A step that fails is one error; one that cannot run is skipped, saying why."""
    wanted = [name for name in (*STEPS, *OPTIONAL_STEPS) if chosen.get(name)] or list(STEPS)
    paths.made_state_dir()
    done = []
    for name in wanted:
        if name == "packages":
            step = step_packages()
        elif name == "browser":
            step = step_browser()
        elif name == "engine":
            step = step_engine()
        else:
            step = step_shims(say)
        say(step.line())
        done.append(step)
    return done


def require_no_skip(steps: list[Step]) -> None:
    """--strict: a step skipped or only built is an error (CI, where every part is expected)."""
    short = [step for step in steps if step.outcome in ("skipped", "built")]
    if short:
        raise MissingComponentsError(
            f"setup left out: {', '.join(step.name for step in short)}",
            "see each step's line above for what to do",
        )
