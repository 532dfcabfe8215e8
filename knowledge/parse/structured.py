"""Documents parsed whole: JSON (one block per top-level key or row group) and HTML (visible text by heading)."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Iterator

from knowledge.errors import MalformedFile
from knowledge.parse.blocks import BLOCK_CHARS, Block, decode
from knowledge.parse.text import CSV_ROWS_PER_BLOCK


def parse_json(data: bytes, filename: str) -> Iterator[Block]:
    try:
        value = json.loads(decode(data))
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MalformedFile(f"{filename or 'That file'} is not valid JSON ({exc}).") from None
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_blocks(item, prefix=str(key), section=str(key))
    elif isinstance(value, list):
        for start in range(0, len(value), CSV_ROWS_PER_BLOCK):
            part = value[start:start + CSV_ROWS_PER_BLOCK]
            lines = [line for i, item in enumerate(part, start=start) for line in _json_lines(item, f"[{i}]")]
            yield Block(text="\n".join(lines), section=f"items {start + 1}–{start + len(part)}")
    else:
        yield Block(text=str(value))


def _json_blocks(value: object, *, prefix: str, section: str) -> Iterator[Block]:
    lines: list[str] = []
    size = 0
    for line in _json_lines(value, prefix):
        lines.append(line)
        size += len(line)
        if size >= BLOCK_CHARS:
            yield Block(text="\n".join(lines), section=section)
            lines, size = [], 0
    if lines:
        yield Block(text="\n".join(lines), section=section)


def _json_lines(value: object, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _json_lines(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _json_lines(item, f"{path}[{i}]")
    else:
        yield f"{path}: {value}"


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, split at headings."""

    SKIP = {"script", "style", "noscript", "template", "svg", "head"}
    BREAKS = {"p", "div", "br", "li", "tr", "section", "article", "table", "ul", "ol", "pre", "blockquote",
              "dd", "dt", "hr", "main", "header", "footer", "nav", "aside", "form"}
    HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.parts: list[str] = []
        self.section: str | None = None
        self.headings: list[str] = []
        self.heading_level: int | None = None
        self.heading_parts: list[str] = []
        self.skip_depth = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self.SKIP:
            self.skip_depth += 1
        elif tag in self.HEADINGS:
            self.flush()
            self.heading_level = int(tag[1])
            self.heading_parts = []
        elif tag in self.BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in self.HEADINGS and self.heading_level is not None:
            text = " ".join("".join(self.heading_parts).split())
            level = self.heading_level
            del self.headings[level - 1:]
            self.headings.extend([""] * (level - 1 - len(self.headings)))
            self.headings.append(text)
            self.section = " > ".join(h for h in self.headings if h) or None
            self.heading_level = None
            if text:
                self.parts.append(text + "\n")
        elif tag in self.BREAKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.heading_level is not None:
            self.heading_parts.append(data)
        else:
            self.parts.append(data)
            if sum(len(p) for p in self.parts[-50:]) > 2 * BLOCK_CHARS:
                self.flush()

    def flush(self) -> None:
        text = re.sub(r"[ \t\r\f\v]+", " ", "".join(self.parts))
        text = re.sub(r"\s*\n\s*", "\n", text).strip()
        self.parts = []
        if text:
            self.blocks.append(Block(text=text, section=self.section))


def parse_html(text: str) -> Iterator[Block]:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    parser.flush()
    return iter(parser.blocks)
