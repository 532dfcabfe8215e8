"""Binary documents: PDF (text by page) and Word .docx (sections from heading styles, zip-bomb checked)."""
from __future__ import annotations

import io
import re
import zipfile
from typing import Iterator

from knowledge.errors import EncryptedPdf, MalformedFile, SuspiciousArchive, WrongContent
from knowledge.parse.blocks import BLOCK_CHARS, Block

DOCX_MAX_UNCOMPRESSED = 200 * 1024 * 1024
DOCX_MAX_RATIO = 100


def parse_pdf(data: bytes, filename: str) -> Iterator[Block]:
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


def parse_docx(data: bytes, filename: str) -> Iterator[Block]:
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
