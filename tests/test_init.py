"""`labreport init`: a lab folder from a built-in lab or another lab, in the current folder or a
new one; the wheel's file list (labreport/bundle.py), which carries the built-in labs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labreport import bundle, config

from .conftest import ROOT


def init(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labreport", "init", *args],
        cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("origin", list(bundle.builtin_labs()))
def test_init_in_the_current_folder_makes_a_lab_named_after_it(tmp_path: Path, origin: str) -> None:
    here = tmp_path / "my-lab"
    here.mkdir()
    (here / "notes.txt").write_text("mine")
    done = init(here, "--from", origin)
    assert done.returncode == 0, done.stderr
    assert "labreport doctor && labreport measure && labreport render" in done.stdout
    assert "cd " not in done.stdout  # it is the current folder already
    lab = config.load(here / "lab.toml")
    assert lab.name == "my-lab" and lab.image.repository == "labreport/my-lab"
    assert lab.wasm_image.reference == "labreport/my-lab-wasm"
    assert (here / "notes.txt").read_text() == "mine"
    assert (here / "templates").is_dir()
    assert sorted(p.name for p in here.iterdir()) == ["app", "lab.toml", "notes.txt", "templates"]
    source = bundle.builtin_labs()[origin]
    for name in config.load(source / "lab.toml").sources:
        assert (here / "app" / name).read_bytes() == (source / "app" / name).read_bytes()


def test_init_of_lab12_carries_the_default_templates_and_never_measurements(
    tmp_path: Path,
) -> None:
    done = init(tmp_path, "new", "--name", "Lab-A")
    assert done.returncode == 0, done.stderr
    assert "cd new && labreport doctor" in done.stdout
    made = tmp_path / "new"
    assert config.load(made / "lab.toml").name == "Lab-A"
    assert (made / "templates" / "report.md.j2").read_bytes() == (
        bundle.bundled("templates") / "report.md.j2"
    ).read_bytes()
    assert not (made / "measurements").exists() and not (made / "report.md").exists()


def test_init_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    assert init(tmp_path, "lab").returncode == 0
    (tmp_path / "lab" / "lab.toml").write_text("# edited\n")
    again = init(tmp_path, "lab", "--from", "c-primes")
    assert again.returncode == 2
    assert again.stderr.splitlines()[0].endswith("lab.toml already exists")
    assert (tmp_path / "lab" / "lab.toml").read_text() == "# edited\n"
    assert not [p for p in (tmp_path / "lab").iterdir() if p.name.startswith(".labreport-init")]


def test_the_wheel_carries_what_bundle_names_and_nothing_beside_it(tmp_path: Path) -> None:
    files = bundle.wheel_files(ROOT)
    wheel_paths = set(files.values())
    assert "labreport/_data/labs/lab12/lab.toml" in wheel_paths
    assert "labreport/_data/labs/c-primes/app/primes.c" in wheel_paths
    assert "labreport/_data/shim/Cargo.lock" in wheel_paths
    assert "labreport/_data/templates/report.md.j2" in wheel_paths
    for source in files:
        parts = Path(source).parts
        assert not {"measurements", "report", "target", "__pycache__"} & set(parts), source
        assert not source.endswith("report.md")
    # A build's leftovers beside a part are never carried; a link is refused.
    copy = tmp_path / "repo"
    shutil.copytree(
        ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "*_cache", "__pycache__")
    )
    (copy / "shim" / "target" / "release").mkdir(parents=True)
    (copy / "shim" / "target" / "release" / "big").write_text("x")
    (copy / "labs" / "c-primes" / "app" / "target").mkdir()
    carried = bundle.wheel_files(copy)
    assert set(carried.values()) == wheel_paths
    assert not [s for s in carried if "target" in s or "measurements" in s]
    os.symlink("/etc/passwd", copy / "app" / "stolen")
    with pytest.raises(ValueError, match="a link"):
        bundle.wheel_files(copy)


def test_a_checkout_is_said_modified_only_for_changes_to_the_package(tmp_path: Path) -> None:
    repo, package = tmp_path / "repo", tmp_path / "repo" / "pkg"
    package.mkdir(parents=True)
    (package / "code.py").write_text("a = 1\n")
    (repo / "data.json").write_text("{}\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "one"]):
        subprocess.run([*git, *argv], check=True, capture_output=True, timeout=60)
    commit, modified = bundle.git_head(repo, package)
    assert commit is not None and len(commit) == 40 and modified is False
    (repo / "data.json").write_text('{"measured": 1}\n')  # a measurement beside the package
    assert bundle.git_head(repo, package) == (commit, False)
    (package / "code.py").write_text("a = 2\n")
    assert bundle.git_head(repo, package) == (commit, True)
    assert bundle.git_head(tmp_path, package) == (None, None)  # not a checkout
