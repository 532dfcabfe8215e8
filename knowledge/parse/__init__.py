"""File type detection and parsers, one module per format family: bytes (or a file streamed line by
line) to text blocks with their section heading or page number, kept for citations."""
from __future__ import annotations

import io
from pathlib import PurePath
from typing import IO, Iterable, Iterator

from knowledge.errors import UnsupportedFileType, WrongContent
from knowledge.parse.blocks import LINE_CHARS, Block, decode
from knowledge.parse.office import check_zip, parse_docx, parse_pdf
from knowledge.parse.structured import parse_html, parse_json
from knowledge.parse.text import parse_code, parse_csv, parse_markdown, parse_text

__all__ = ["TEXT_KINDS", "Block", "check_zip", "decode", "detect_kind", "parse_bytes", "parse_lines", "read_lines"]

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


def parse_bytes(kind: str, data: bytes, *, filename: str = "") -> Iterator[Block]:
    """Blocks of a document held in memory."""
    if kind in TEXT_KINDS:
        yield from parse_lines(kind, io.StringIO(decode(data)).readlines(), filename=filename)
    elif kind == "json":
        yield from parse_json(data, filename)
    elif kind == "html":
        yield from parse_html(decode(data))
    elif kind == "pdf":
        yield from parse_pdf(data, filename)
    elif kind == "docx":
        yield from parse_docx(data, filename)
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
        return parse_markdown(lines)
    if kind == "code":
        return parse_code(lines)
    if kind == "csv":
        return parse_csv(lines, delimiter="\t" if filename.lower().endswith(".tsv") else ",")
    return parse_text(lines)
