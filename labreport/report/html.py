"""A report as one HTML page: its Markdown through a GitHub-flavoured renderer (markdown-it-py:
CommonMark with GFM's tables and strikethrough), raw HTML in the Markdown shown as text, and the
charts inline as data: URIs, so that the page alone is the whole report (for courses that take
uploads rather than repositories). The same page without inlining, beside a report.md, is how
the browser check sees the Markdown report as a reader's viewer shows it."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping

from markdown_it import MarkdownIt
from markdown_it.token import Token

# A laptop's width and a GitHub-like reading column; wide tables and code scroll in their own
# box, so that nothing widens the page.
STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1f2328; }
table { border-collapse: collapse; display: block; overflow-x: auto; max-width: 100%;
        margin: 1rem 0; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.6rem; }
pre { background: #f6f8fa; padding: 0.8rem; overflow-x: auto; }
code { font-size: 0.9em; overflow-wrap: anywhere; }
pre code { overflow-wrap: normal; }
img { max-width: 100%; height: auto; }
"""


def _renderer() -> MarkdownIt:
    """CommonMark with GFM's tables and strikethrough; raw HTML is text (the report's words come
    from files anyone may write), and markdown-it's own link check refuses script URLs."""
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def _inline_images(tokens: list[Token], charts: Mapping[str, str]) -> None:
    """Each image whose source is a chart link gets the chart itself, as a data: URI."""
    for token in tokens:
        for child in token.children or []:
            source = child.attrGet("src")
            if child.type == "image" and isinstance(source, str) and source in charts:
                encoded = base64.b64encode(charts[source].encode()).decode("ascii")
                child.attrSet("src", f"data:image/svg+xml;base64,{encoded}")


def page(markdown: str, title: str, charts: Mapping[str, str] | None = None) -> str:
    """The HTML page of a Markdown report; charts maps a chart's link in the Markdown to its
    SVG text, drawn inline (None: links stay as they are, relative to the page's folder)."""
    renderer = _renderer()
    tokens = renderer.parse(markdown)
    if charts:  # as the renderer writes the links it parsed (percent-encoded)
        _inline_images(tokens, {renderer.normalizeLink(k): v for k, v in charts.items()})
    body = renderer.renderer.render(tokens, renderer.options, {})
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}</body>\n</html>\n"
    )
