"""`labreport compare OLD NEW`: verdicts per runtime, Markdown, and --fail-above's exit code."""

from __future__ import annotations

from pathlib import Path

from labreport.analysis import compare

from .fakes import SYNTHETIC, synthetic_variant
from .test_cli import run


def scaled(tmp_path: Path, name: str, factors: dict[str, float], lab: str = "") -> Path:
    return synthetic_variant(tmp_path / name, factors, lab)


def test_verdicts_per_runtime(tmp_path: Path) -> None:
    old = compare.side(SYNTHETIC)
    new = compare.side(scaled(tmp_path, "new.json", {"ctr-runc": 1.3, "native": 0.7}))
    rows = {row.runtime: row for row in compare.compare(old, new)}
    assert rows["ctr-runc"].result is not None
    assert rows["ctr-runc"].result.verdict == "slower"
    assert rows["native"].result is not None and rows["native"].result.verdict == "faster"
    same = rows["ctr-wasmtime"].result
    assert same is not None and same.verdict == "no difference shown" and same.p_value == 1
    assert rows["ctr-runc"].slower_than(1.2) and not rows["ctr-runc"].slower_than(1.4)
    assert not rows["native"].slower_than(1.0)  # faster is never "slower than"


def test_markdown_and_fail_above_exit_codes(tmp_path: Path) -> None:
    new = scaled(tmp_path, "new.json", {"ctr-runc": 1.3})
    done = run("compare", str(SYNTHETIC), str(new), "--format", "md", "--fail-above", "1.10")
    assert done.returncode == 1, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("| ctr-runc |"))
    assert "NEW slower (+30.0 %)" in row and "1.30x" in row
    assert done.stderr.splitlines() == [
        "error: significantly slower than 1.1x OLD: ctr-runc",
        "hint: look at what changed between the two measurements",
    ]
    loose = run("compare", str(SYNTHETIC), str(new), "--fail-above", "1.5")
    assert loose.returncode == 0, loose.stderr
    assert "NEW slower" in loose.stdout


def test_a_folder_is_its_complete_files_and_other_labs_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "runs"
    folder.mkdir()
    scaled(folder, "lab12.json", {})
    (folder / "lab12.partial.json").write_text("not even json")  # partial files are not read
    done = run("compare", str(folder), str(SYNTHETIC))
    assert done.returncode == 0, done.stderr
    other = scaled(tmp_path, "other.json", {}, lab="lab13")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    scaled(mixed, "a.json", {})
    (mixed / "b.json").write_bytes(other.read_bytes())
    refused = run("compare", str(mixed), str(SYNTHETIC))
    assert refused.returncode == 2
    assert "files of different labs (lab12, lab13)" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_unknown_format_and_missing_file_are_one_line(tmp_path: Path) -> None:
    done = run("compare", str(SYNTHETIC), str(SYNTHETIC), "--format", "html")
    assert done.returncode == 2 and "error: --format html: not a choice" in done.stderr
    missing = run("compare", str(tmp_path / "nope.json"), str(SYNTHETIC))
    assert missing.returncode == 2 and "no such file" in missing.stderr
