"""What labreport reads at run time that is not Python: the default templates, the built-in labs
and the shim crate. The repository keeps them at its top level (templates/, lab.toml and app/,
labs/, shim/); the wheel carries them inside the package, under labreport/_data, where the build
hook (hatch_build.py, which calls wheel_files here) puts them. Nothing else at run time
reads a path of the checkout.

This module imports only the standard library at its top: the build hook loads it on its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
DATA = PACKAGE / "_data"


@dataclass(frozen=True)
class Bundled:
    """One folder of what labreport ships: where the wheel has it (under _data), where a
    checkout has it (from the repository's top), and which of its parts the wheel carries."""

    packaged: str
    checkout: str
    parts: tuple[str, ...]


BUNDLED = {
    "templates": Bundled("templates", "templates", (".",)),
    "shim": Bundled("shim", "shim", ("Cargo.toml", "Cargo.lock", "src")),
}
# The built-in labs, in a checkout: the top level's lab (its templates are the defaults) and
# each folder of labs/; the wheel carries each as labs/<its name>. No lab is named here.
LABS_DIR = "labs"
CONFIG = "lab.toml"
DEFAULT_MARKER = "default"  # in the wheel's labs/: the default lab's name
# Never carried, wherever they are found under a part: a build's leftovers and caches.
SKIPPED = frozenset({"__pycache__", "target", ".pytest_cache", ".mypy_cache"})


def in_wheel() -> bool:
    """Whether this labreport is an installed wheel (it carries _data), not a checkout."""
    return DATA.is_dir()


def bundled(name: str) -> Path:
    """The folder BUNDLED names, as this labreport has it."""
    entry = BUNDLED[name]
    return DATA / entry.packaged if in_wheel() else PACKAGE.parent / entry.checkout


def _lab_facts(folder: Path) -> tuple[str, str]:
    """A lab folder's name and app_dir, from its lab.toml (read as TOML only)."""
    import tomllib

    with (folder / CONFIG).open("rb") as handle:
        raw = tomllib.load(handle)
    return str(raw["name"]), str(raw.get("app_dir", "app"))


def _checkout_labs(root: Path) -> list[Path]:
    tops = [root] if (root / CONFIG).is_file() else []
    return tops + sorted(p.parent for p in (root / LABS_DIR).glob(f"*/{CONFIG}"))


def builtin_labs() -> dict[str, Path]:
    """Each built-in lab's folder by its name, the default (the top-level lab) first. The wheel
    names the default in labs/default (hatch_build.py writes it)."""
    if in_wheel():
        marker = DATA / LABS_DIR / DEFAULT_MARKER
        default = marker.read_text().strip() if marker.is_file() else ""
        found = sorted(p.parent for p in (DATA / LABS_DIR).glob(f"*/{CONFIG}"))
        return {p.name: p for p in sorted(found, key=lambda p: p.name != default)}
    labs = {}
    for folder in _checkout_labs(PACKAGE.parent):
        try:
            labs[_lab_facts(folder)[0]] = folder
        except (OSError, ValueError, KeyError):  # a lab being written: not one to start from
            continue
    return labs


def lab_templates(folder: Path) -> Path:
    """A built-in lab's templates: its own (layered on the defaults), else the defaults."""
    own = folder / "templates"
    return own if own.is_dir() else bundled("templates")


def _walk(root: Path, top: Path, parts: tuple[str, ...], packaged: str) -> dict[str, str]:
    files = {}
    for part in parts:
        start = top / part
        found = [start] if start.is_file() or start.is_symlink() else sorted(start.rglob("*"))
        for path in found:
            relative = path.relative_to(top)
            if path.is_symlink():
                raise ValueError(f"{path}: a link; the wheel carries files only")
            if path.is_dir() or SKIPPED & set(relative.parts):
                continue
            files[str(path.relative_to(root))] = f"labreport/_data/{packaged}/{relative}"
    return files


def wheel_files(root: Path) -> dict[str, str]:
    """Every file the wheel carries: its path from the repository's top (root) to its path in
    the wheel. Walked file by file, so that only what is named goes in, never a build's
    leftovers beside it; links are refused, so the wheel is what the repository holds."""
    root = root.resolve()
    files: dict[str, str] = {}
    for entry in BUNDLED.values():
        files |= _walk(root, (root / entry.checkout).resolve(), entry.parts, entry.packaged)
    for folder in _checkout_labs(root):
        name, app_dir = _lab_facts(folder)
        parts = (CONFIG, app_dir, *(("templates",) if folder != root else ()))
        files |= _walk(root, folder.resolve(), parts, f"{LABS_DIR}/{name}")
    return files


def default_lab(root: Path) -> str:
    """The lab `init` starts from when --from is not given: the top level's."""
    return _lab_facts(root)[0]


@dataclass(frozen=True)
class Install:
    """How this labreport was installed, as a measurement file records it."""

    version: str
    kind: str  # "wheel" or "checkout"
    location: str
    commit: str | None = None  # a checkout's HEAD, where git can tell
    modified: bool | None = None  # the checkout's package has uncommitted changes

    def line(self) -> str:
        where = self.kind
        if self.commit:
            where += f" at {self.commit[:12]}"
            where += " with uncommitted changes" if self.modified else ""
        return f"labreport {self.version} ({where}: {self.location})"


def install() -> Install:
    """This labreport's version, and whether it runs from a wheel or a checkout (with its
    commit, asked of git within a few seconds; None where git cannot tell)."""
    from labreport import __version__

    if in_wheel():
        return Install(__version__, "wheel", str(PACKAGE))
    commit, modified = git_head(PACKAGE.parent, PACKAGE)
    return Install(__version__, "checkout", str(PACKAGE.parent), commit, modified)


def git_head(root: Path, package: Path) -> tuple[str | None, bool | None]:
    """The checkout's HEAD, and whether the package's tracked files differ from it (a change
    to a measurement file or a report beside it is not a change to labreport)."""
    import subprocess

    if not (root / ".git").exists():
        return None, None
    git = ["git", "-C", str(root), "-c", f"safe.directory={root}"]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
        status = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "--", str(package)],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    commit = head.stdout.strip() if head.returncode == 0 else None
    modified = bool(status.stdout.strip()) if status.returncode == 0 else None
    return commit, modified
