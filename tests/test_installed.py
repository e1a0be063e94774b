"""labreport as a user installs it, the quick part (the whole flow with pipx, the engine and the
shims is tests/integration/test_installed_tool.py): the wheel built from this checkout,
installed outside it, run with the checkout off sys.path in an empty folder, renders as the
checkout does; the sdist builds a wheel with the same contents."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from labreport import bundle

from .conftest import ROOT
from .fakes import SYNTHETIC


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel's files in a folder of their own (its dependencies are this venv's)."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(work), str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (wheel,) = work.glob("labreport-*.whl")
    site = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return site


def run_installed(site: Path, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -P -m labreport ...` in folder: -P keeps the current folder off sys.path, and the
    installed copy comes before this checkout's editable install."""
    env = {**os.environ, "PYTHONPATH": str(site), "LABREPORT_STATE_DIR": str(folder / ".state")}
    return subprocess.run(
        [sys.executable, "-P", "-m", "labreport", *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_the_wheel_carries_the_templates_and_renders_in_an_empty_folder(
    installed: Path, tmp_path: Path
) -> None:
    assert (installed / "labreport" / "_data" / "templates" / "report.md.j2").is_file()
    version = run_installed(installed, tmp_path, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("labreport 0.1.0 (wheel: ")
    assert str(installed) in version.stdout and str(ROOT) not in version.stdout
    shutil.copy(SYNTHETIC, tmp_path / "m.json")
    done = run_installed(installed, tmp_path, "render", "m.json", "-o", "report.md")
    assert done.returncode == 0, done.stderr
    here = tmp_path / "report.md"
    assert here.read_text().startswith("# ") and (tmp_path / "report").is_dir()
    checked = run_installed(installed, tmp_path, "render", "m.json", "--check", "-o", "report.md")
    assert checked.returncode == 0, checked.stderr


def test_the_sdist_builds_the_same_wheel_contents(tmp_path: Path) -> None:
    """The sdist holds the repository's parts only, and a wheel built from it carries what the
    checkout's wheel carries, file for file."""
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "-o", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (sdist,) = tmp_path.glob("labreport-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    assert "shim/Cargo.lock" in names and "labs/c-primes/app/primes.c" in names
    assert not [n for n in names if n.startswith((".venv/", ".hypothesis/", "shim/target/"))]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path),
         str(sdist)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    (from_sdist,) = tmp_path.glob("labreport-*.whl")
    with zipfile.ZipFile(from_sdist) as wheel:
        data = {n for n in wheel.namelist() if n.startswith("labreport/_data/")}
    assert data == {
        *bundle.wheel_files(ROOT).values(),
        f"labreport/_data/{bundle.LABS_DIR}/{bundle.DEFAULT_MARKER}",
    }
