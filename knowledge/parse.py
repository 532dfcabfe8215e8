"""File type detection and parsers: bytes (or a file streamed line by line) to text blocks with their
section heading or page number, kept for citations."""
from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath
from typing import IO, Iterable, Iterator

from knowledge.errors import (
    EncryptedPdf,
    MalformedFile,
    SuspiciousArchive,
    UnsupportedFileType,
    WrongContent,
)


@dataclass(frozen=True)
class Block:
    """A run of text from one place in a document."""

    text: str
    section: str | None = None
    page: int | None = None


# Flush a text block at the next paragraph break past this size, and unconditionally at twice it:
# keeps memory bounded while streaming and gives the chunker natural boundaries.
BLOCK_CHARS = 8_000
LINE_CHARS = 65_536  # a "line" longer than this is read in pieces (a 50 MB file with no newlines)
DOCX_MAX_UNCOMPRESSED = 200 * 1024 * 1024
DOCX_MAX_RATIO = 100

TEXT_KINDS = ("text", "markdown", "csv", "code")

_EXTENSIONS = {
    ".txt": "text", ".text": "text", ".log": "text", ".rst": "text",
    ".md": "markdown", ".markdown": "markdown", ".mdx": "markdown",
    ".csv": "csv", ".tsv": "csv",
    ".json": "json", ".jsonl": "text", ".ndjson": "text",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}
_CODE_EXTENSIONS = {
    ".py", ".pyi", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".go", ".rs", ".java", ".kt", ".kts",
    ".scala", ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".rb", ".php", ".swift", ".m", ".sh", ".bash",
    ".zsh", ".sql", ".r", ".lua", ".pl", ".ex", ".exs", ".erl", ".hs", ".clj", ".dart", ".vue",
    ".yaml", ".yml", ".toml", ".ini", ".cfg", ".xml", ".css", ".scss", ".proto", ".tf", ".gradle",
}
_MIMETYPES = {
    "text/plain": "text", "text/markdown": "markdown", "text/x-markdown": "markdown",
    "text/csv": "csv", "text/tab-separated-values": "csv", "application/json": "json",
    "text/html": "html", "application/xhtml+xml": "html", "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}


def detect_kind(filename: str, mimetype: str | None, head: bytes) -> str:
    """The parser for a file, from its name, Slack's mimetype and its first bytes; errors say why not."""
    suffix = PurePath(filename).suffix.lower()
    claimed = _EXTENSIONS.get(suffix) or ("code" if suffix in _CODE_EXTENSIONS else None)
    claimed = claimed or _MIMETYPES.get((mimetype or "").split(";")[0].strip().lower())
    if claimed is None and (mimetype or "").startswith("text/"):
        claimed = "text"
    if head.startswith(b"%PDF-"):
        if claimed not in (None, "pdf"):
            raise WrongContent(f"{filename} is named like a {claimed} file but is a PDF. Please rename it to .pdf.")
        return "pdf"
    if claimed == "pdf":
        if _looks_like_html(head):
            raise WrongContent(
                f"{filename} is a web page (perhaps a sign-in page), not a PDF. Please download the real file and share it again."
            )
        raise MalformedFile(f"{filename} is not a valid PDF (it doesn't start like one).")
    if claimed == "docx":
        if _looks_like_html(head):
            raise WrongContent(f"{filename} is a web page, not a Word document. Please share the real file.")
        if not head.startswith(b"PK\x03\x04"):
            raise MalformedFile(f"{filename} is not a valid Word (.docx) document.")
        return "docx"
    if claimed is None:
        raise UnsupportedFileType(
            f"I can't read {filename or 'this file'} ({mimetype or 'unknown type'}). I can read text, Markdown, CSV, "
            "JSON, HTML, PDF, Word (.docx) and source code files."
        )
    if b"\x00" in head[:8192] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnsupportedFileType(f"{filename} looks like a binary file, not {claimed} text.")
    return claimed


def _looks_like_html(head: bytes) -> bool:
    start = head[:1024].lstrip().lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in start[:512]


def decode(data: bytes) -> str:
    """Bytes as text: UTF-8 (with or without BOM), UTF-16 with BOM, else Latin-1 (never fails)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_bytes(kind: str, data: bytes, *, filename: str = "") -> Iterator[Block]:
    """Blocks of a document held in memory."""
    if kind in TEXT_KINDS:
        yield from parse_lines(kind, io.StringIO(decode(data)).readlines(), filename=filename)
    elif kind == "json":
        yield from _parse_json(data, filename)
    elif kind == "html":
        yield from _parse_html(decode(data))
    elif kind == "pdf":
        yield from _parse_pdf(data, filename)
    elif kind == "docx":
        yield from _parse_docx(data, filename)
    else:
        raise UnsupportedFileType(f"I can't read {filename or 'this file'}.")


def read_lines(stream: IO[str]) -> Iterator[str]:
    """A text stream's lines, each at most LINE_CHARS long, without loading the file."""
    while True:
        line = stream.readline(LINE_CHARS)
        if not line:
            return
        yield line


def parse_lines(kind: str, lines: Iterable[str], *, filename: str = "") -> Iterator[Block]:
    """Blocks of a line-oriented document (text, Markdown, CSV, code); streams."""
    if kind == "markdown":
        return _parse_markdown(lines)
    if kind == "code":
        return _parse_code(lines)
    if kind == "csv":
        return _parse_csv(lines, delimiter="\t" if filename.lower().endswith(".tsv") else ",")
    return _parse_text(lines)


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


def _parse_text(lines: Iterable[str]) -> Iterator[Block]:
    return _paragraphs(lines)


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _parse_markdown(lines: Iterable[str]) -> Iterator[Block]:
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


def _parse_code(lines: Iterable[str]) -> Iterator[Block]:
    def section_of(line: str) -> str | None:
        match = _CODE_DEF.match(line)  # only unindented (top-level) definitions start a section
        return f"{match.group(1)} {match.group(2)}" if match else None

    return _paragraphs(lines, section_of)


CSV_ROWS_PER_BLOCK = 25


def _parse_csv(lines: Iterable[str], *, delimiter: str) -> Iterator[Block]:
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


def _parse_json(data: bytes, filename: str) -> Iterator[Block]:
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


def _parse_html(text: str) -> Iterator[Block]:
    parser = _HTMLText()
    parser.feed(text)
    parser.close()
    parser.flush()
    return iter(parser.blocks)


def _parse_pdf(data: bytes, filename: str) -> Iterator[Block]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, PdfReadError

    name = filename or "That PDF"
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many "protected" PDFs only restrict printing and open with an empty password.
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError, PdfReadError):
                opened = 0
            if not opened:
                raise EncryptedPdf(f"{name} is password-protected. Please share an unprotected copy.")
        pages = reader.pages
        count = len(pages)
    except EncryptedPdf:
        raise
    except Exception as exc:  # pypdf raises many types (PdfReadError, ValueError, KeyError…) on damage
        raise MalformedFile(f"{name} looks damaged, so I couldn't read it ({type(exc).__name__}).") from None
    for number in range(count):
        try:
            text = pages[number].extract_text() or ""
        except Exception as exc:
            raise MalformedFile(f"{name} has a damaged page {number + 1} ({type(exc).__name__}).") from None
        if text.strip():
            yield Block(text=text.strip(), page=number + 1)


def check_zip(data: bytes, filename: str) -> None:
    """Refuse archives that expand far beyond their size (decompression bombs) before opening them."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise MalformedFile(f"{filename or 'That document'} is damaged ({exc}).") from None
    total = sum(info.file_size for info in infos)
    if total > DOCX_MAX_UNCOMPRESSED or total > DOCX_MAX_RATIO * max(len(data), 1) + 1024 * 1024:
        raise SuspiciousArchive(
            f"{filename or 'That document'} expands to {total // (1024 * 1024)} MB from {len(data) // 1024} KB, "
            "so I didn't open it."
        )
    if "word/document.xml" not in {info.filename for info in infos}:
        raise WrongContent(f"{filename or 'That file'} is a zip archive, not a Word document.")


def _parse_docx(data: bytes, filename: str) -> Iterator[Block]:
    check_zip(data, filename)
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        items = list(document.iter_inner_content())
    except Exception as exc:
        raise MalformedFile(f"{filename or 'That document'} looks damaged ({type(exc).__name__}).") from None
    headings: list[str] = []
    section: str | None = None
    parts: list[str] = []
    for item in items:
        if isinstance(item, Table):
            rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in item.rows]
            parts.append("\n".join(rows))
            continue
        text = item.text.strip()
        level = _heading_level(item.style.name if item.style is not None else "")
        if level is not None and text:
            if parts:
                yield Block(text="\n".join(parts), section=section)
                parts = []
            del headings[level - 1:]
            headings.extend([""] * (level - 1 - len(headings)))
            headings.append(text)
            section = " > ".join(h for h in headings if h)
        if text:
            parts.append(text)
        if sum(len(p) for p in parts) >= BLOCK_CHARS:
            yield Block(text="\n".join(parts), section=section)
            parts = []
    if parts:
        yield Block(text="\n".join(parts), section=section)


def _heading_level(style_name: str) -> int | None:
    if style_name == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style_name or "")
    return int(match.group(1)) if match else None
