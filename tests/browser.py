"""Debian's Chromium, headless, driven through its chromedriver by the W3C WebDriver protocol
(JSON over HTTP, a few calls: no client library needed): open a page at a laptop's size, run
a script in it, take a screenshot."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LAPTOP = (1366, 768)  # CSS pixels: the most common laptop screen
CALL_TIMEOUT_S = 60


class Browser:
    """One WebDriver session."""

    def __init__(self, base: str, session: str) -> None:
        self.base, self.session = base, session

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        request = urllib.request.Request(
            f"{self.base}/session/{self.session}{path}",
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as answer:
            return json.loads(answer.read())["value"]

    def open(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def run(self, script: str) -> Any:
        """A function body run in the page; what it returns, as JSON."""
        return self._call("POST", "/execute/sync", {"script": script, "args": []})

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def available() -> bool:
    return shutil.which("chromedriver") is not None and shutil.which("chromium") is not None


@contextlib.contextmanager
def chromium(size: tuple[int, int] = LAPTOP) -> Iterator[Browser]:
    """A headless Chromium whose viewport is size; the driver and the browser are stopped, and
    the profile removed, on every way out."""
    port = _free_port()
    profile = Path(tempfile.mkdtemp(prefix="labreport-chromium-"))
    driver = subprocess.Popen(
        ["chromedriver", f"--port={port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/status", timeout=5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        arguments = [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--hide-scrollbars", f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
        ]  # fmt: skip
        capabilities = {"alwaysMatch": {"goog:chromeOptions": {"args": arguments}}}
        request = urllib.request.Request(
            f"{base}/session",
            data=json.dumps({"capabilities": capabilities}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_S) as answer:
            session = json.loads(answer.read())["value"]["sessionId"]
        browser = Browser(base, session)
        try:
            yield browser
        finally:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(
                    urllib.request.Request(f"{base}/session/{session}", method="DELETE"),
                    timeout=CALL_TIMEOUT_S,
                ).close()
    finally:  # the driver leads a session of its own, the browser's processes in its group
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(driver.pid, sig)
            try:
                driver.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        shutil.rmtree(profile, ignore_errors=True)


# What a reader's browser shows, in numbers: every image, whether it loaded; the tables, and
# which of them had to scroll (the page's style gives a table that does not fit a scroll box of
# its own, as GitHub's does); and whether anything is wider than the window.
LOOK = """
const images = Array.from(document.images).map(i => ({
  src: i.getAttribute("src").slice(0, 80), loaded: i.complete && i.naturalWidth > 0,
  width: i.getBoundingClientRect().width}));
const wide = Array.from(document.body.querySelectorAll("*"))
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1
               && !e.closest("table, pre"))
  .map(e => e.tagName + ": " + (e.textContent || "").slice(0, 60));
const scrolling = Array.from(document.querySelectorAll("table"))
  .filter(t => t.scrollWidth > t.clientWidth + 1)
  .map(t => (t.querySelector("th") || t).textContent.slice(0, 40));
return {images: images, tables: document.querySelectorAll("table").length, scrolling: scrolling,
        page_width: document.documentElement.scrollWidth, window_width: window.innerWidth,
        wide: wide.slice(0, 10)};
"""


def problems(look: dict[str, Any], markdown: str) -> list[str]:
    """What a reader would find wrong in what LOOK saw of the page of this Markdown."""
    found = [f"image not shown: {i['src']}" for i in look["images"] if not i["loaded"]]
    tables = len(re.findall(r"^\|(?: *:?-+:? *\|)+ *$", markdown, flags=re.MULTILINE))
    if look["tables"] != tables:
        found.append(f"{tables} tables in the Markdown, {look['tables']} shown as tables")
    found += [f"a table wider than the page (it scrolls): {head}" for head in look["scrolling"]]
    if look["page_width"] > look["window_width"]:
        found.append(f"the page is {look['page_width']} px wide in a {look['window_width']} px "
                     f"window: {look['wide']}")  # fmt: skip
    return found
