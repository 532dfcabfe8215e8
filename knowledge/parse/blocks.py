"""A document as text blocks: what every parser yields, and the limits they share."""
from __future__ import annotations

from dataclasses import dataclass


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


def decode(data: bytes) -> str:
    """Bytes as text: UTF-8 (with or without BOM), UTF-16 with BOM, else Latin-1 (never fails)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")
