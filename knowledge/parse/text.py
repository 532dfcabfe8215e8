"""Line-oriented formats, streamed: plain text, Markdown (sections from headings), source code, CSV/TSV."""
from __future__ import annotations

import csv
import re
from typing import Iterable, Iterator

from knowledge.parse.blocks import BLOCK_CHARS, Block


def _paragraphs(lines: Iterable[str], section_of=None) -> Iterator[Block]:
    """Group lines into blocks at paragraph breaks; `section_of(line)` may switch the section."""
    buffer: list[str] = []
    size = 0
    section: str | None = None

    def flush() -> Iterator[Block]:
        nonlocal buffer, size
        text = "".join(buffer).strip()
        buffer, size = [], 0
        if text:
            yield Block(text=text, section=section)

    for line in lines:
        if section_of is not None:
            new_section = section_of(line)
            if new_section is not None:
                yield from flush()
                section = new_section or None
                buffer.append(line)  # the heading line belongs to its section's text
                size += len(line)
                continue
        buffer.append(line)
        size += len(line)
        if (size >= BLOCK_CHARS and not line.strip()) or size >= 2 * BLOCK_CHARS:
            yield from flush()
    yield from flush()


def parse_text(lines: Iterable[str]) -> Iterator[Block]:
    return _paragraphs(lines)


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def parse_markdown(lines: Iterable[str]) -> Iterator[Block]:
    headings: list[str] = []
    in_fence = False

    def section_of(line: str) -> str | None:
        nonlocal in_fence
        if _FENCE.match(line):
            in_fence = not in_fence
            return None
        match = None if in_fence else _MD_HEADING.match(line)
        if not match:
            return None
        level = len(match.group(1))
        del headings[level - 1:]
        headings.extend([""] * (level - 1 - len(headings)))
        headings.append(match.group(2).strip())
        return " > ".join(h for h in headings if h)

    return _paragraphs(lines, section_of)


_CODE_DEF = re.compile(
    r"^(?:export\s+)?(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:static\s+)?"
    r"(def|class|function|func|fn|interface|struct|enum|impl|trait|type|module|object)\s+([A-Za-z_][\w.]*)"
)


def parse_code(lines: Iterable[str]) -> Iterator[Block]:
    def section_of(line: str) -> str | None:
        match = _CODE_DEF.match(line)  # only unindented (top-level) definitions start a section
        return f"{match.group(1)} {match.group(2)}" if match else None

    return _paragraphs(lines, section_of)


CSV_ROWS_PER_BLOCK = 25


def parse_csv(lines: Iterable[str], *, delimiter: str) -> Iterator[Block]:
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            return
        rows: list[str] = []
        first = 1
        for number, row in enumerate(reader, start=1):
            cells = [f"{name.strip() or f'column {i + 1}'}: {value.strip()}"
                     for i, (name, value) in enumerate(zip(header + [""] * len(row), row)) if value.strip()]
            rows.append("; ".join(cells))
            if len(rows) == CSV_ROWS_PER_BLOCK:
                yield Block(text="\n".join(rows), section=f"rows {first}–{number}")
                rows, first = [], number + 1
        if rows:
            yield Block(text="\n".join(rows), section=f"rows {first}–{first + len(rows) - 1}")
        elif first == 1:
            yield Block(text=", ".join(header), section="header")
    except csv.Error as exc:
        raise MalformedFile(f"That CSV file is malformed: {exc}.") from None
