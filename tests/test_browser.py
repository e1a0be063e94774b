"""The report as a reader sees it: its Markdown through a GitHub-flavoured renderer, opened in a
real headless browser (Debian's Chromium and its driver) at a laptop's size. Every chart image
loads, every table is a table, nothing is wider than the window: for the committed reports of
both labs, for a report written under a name with a space, and for `render --format html`."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labreport.cli import app
from labreport.report import html

from . import browser
from .conftest import ROOT, must_have_everything

REPORTS = {"lab12": ROOT, "c-primes": ROOT / "labs" / "c-primes"}


@pytest.fixture(scope="module")
def chromium() -> Iterator[browser.Browser]:
    if not browser.available():
        reason = "Chromium or chromedriver is missing (`labreport setup --browser` installs them)"
        if must_have_everything():
            pytest.fail(f"{reason}; CI expects scripts/test to have installed them")
        pytest.skip(reason)
    with browser.chromium() as opened:
        yield opened


def _seen(chromium: browser.Browser, page: Path, shots: str = "") -> dict[str, object]:
    """Open the page and look at it; with LABREPORT_SCREENSHOTS=DIR, the first screen and the
    comparison table are saved there as <shots>-*.png (for a note or a review)."""
    chromium.open(page.as_uri())
    look = chromium.run(browser.LOOK)
    folder = os.environ.get("LABREPORT_SCREENSHOTS")
    if folder and shots:
        chromium.screenshot(Path(folder) / f"{shots}-first-screen.png")
        chromium.run('document.querySelector("table").scrollIntoView(); return 0;')
        chromium.screenshot(Path(folder) / f"{shots}-comparison-table.png")
    assert isinstance(look, dict)
    return look


def _as_a_viewer_shows(report: Path) -> Path:
    """report.md as a Markdown viewer shows it: the HTML beside it, its chart links as written."""
    page = report.with_suffix(".viewed.html")
    page.write_text(html.page(report.read_text(), report.name))
    return page


@pytest.mark.parametrize("lab", list(REPORTS))
def test_a_committed_report_reads_in_a_browser(
    chromium: browser.Browser, lab: str, tmp_path: Path
) -> None:
    folder = REPORTS[lab]
    shutil.copy(folder / "report.md", tmp_path / "report.md")
    shutil.copytree(folder / "report", tmp_path / "report")
    markdown = (tmp_path / "report.md").read_text()
    look = _seen(chromium, _as_a_viewer_shows(tmp_path / "report.md"), shots=lab)
    assert browser.problems(look, markdown) == []
    assert len(look["images"]) == 4  # type: ignore[arg-type]  # startup, sizes, memory, serving


def test_a_broken_chart_link_is_found(chromium: browser.Browser, tmp_path: Path) -> None:
    shutil.copy(ROOT / "report.md", tmp_path / "report.md")
    shutil.copytree(ROOT / "report", tmp_path / "report")
    (memory,) = (tmp_path / "report").glob("memory-*.svg")
    memory.unlink()
    look = _seen(chromium, _as_a_viewer_shows(tmp_path / "report.md"))
    found = browser.problems(look, (tmp_path / "report.md").read_text())
    assert found == [f"image not shown: report/{memory.name}"]


def test_a_report_named_with_a_space_shows_its_charts(
    chromium: browser.Browser, tmp_path: Path
) -> None:
    """`-o "my report.md"`: its charts go to `my report/`, linked percent-encoded."""
    written = CliRunner().invoke(
        app, ["render", "--lab", str(ROOT), "-o", str(tmp_path / "my report.md")]
    )
    assert written.exit_code == 0, written.output
    report = tmp_path / "my report.md"
    look = _seen(chromium, _as_a_viewer_shows(report))
    assert browser.problems(look, report.read_text()) == []
    assert len(look["images"]) == 4  # type: ignore[arg-type]


def test_the_html_page_is_the_whole_report_in_one_file(
    chromium: browser.Browser, tmp_path: Path
) -> None:
    written = CliRunner().invoke(
        app, ["render", "--lab", str(ROOT), "--format", "html", "-o", str(tmp_path / "lab12.html")]
    )
    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lab12.html"]  # no chart files
    look = _seen(chromium, tmp_path / "lab12.html", shots="lab12-html")
    assert browser.problems(look, (ROOT / "report.md").read_text()) == []
    assert [i["src"][:26] for i in look["images"]] == ["data:image/svg+xml;base64,"] * 4  # type: ignore[attr-defined]
