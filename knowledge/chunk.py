"""Chunking: blocks to overlapping windows of word pieces, sized for the embedder, never across a
section or page boundary."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

from knowledge.embed import wordpiece_tokenizer
from knowledge.parse import Block

# all-MiniLM-L6-v2 reads 256 pieces; leave room for [CLS]/[SEP] and the title/section prefix.
CHUNK_TOKENS = 200
OVERLAP_TOKENS = 40
SEGMENT_CHARS = 24_000  # blocks of one section are tokenized together up to about this size
PREFIX_CHARS = 120


@dataclass(frozen=True)
class Chunk:
    text: str
    section: str | None
    page: int | None
    tokens: int


def chunk_blocks(
    blocks: Iterable[Block], *, size: int = CHUNK_TOKENS, overlap: int = OVERLAP_TOKENS
) -> Iterator[Chunk]:
    """Windows of at most `size` word pieces with `overlap` shared between neighbours; streams."""
    if not 0 <= overlap < size:
        raise ValueError("overlap must be smaller than size")
    pending: list[str] = []
    key: tuple[str | None, int | None] | None = None
    length = 0
    for block in blocks:
        block_key = (block.section, block.page)
        if pending and (block_key != key or length + len(block.text) > SEGMENT_CHARS):
            yield from _windows("\n\n".join(pending), key, size, overlap)  # type: ignore[arg-type]
            pending, length = [], 0
        key = block_key
        pending.append(block.text)
        length += len(block.text)
    if pending:
        yield from _windows("\n\n".join(pending), key, size, overlap)  # type: ignore[arg-type]


def _windows(text: str, key: tuple[str | None, int | None], size: int, overlap: int) -> Iterator[Chunk]:
    section, page = key
    encoding = wordpiece_tokenizer().encode(text, add_special_tokens=False)
    offsets = encoding.offsets
    word_ids = encoding.word_ids  # a property that builds a new list on every access: read it once
    n = len(offsets)
    if n == 0:
        return
    start = 0
    while True:
        end = min(start + size, n)
        # Don't end a window inside a word: back off to the last piece that starts a word.
        if end < n:
            word_end = end
            while word_end > start + size // 2 and word_ids[word_end] == word_ids[word_end - 1]:
                word_end -= 1
            end = word_end
        piece = text[offsets[start][0]:offsets[end - 1][1]].strip()
        if piece:
            yield Chunk(text=piece, section=section, page=page, tokens=end - start)
        if end >= n:
            return
        next_start = max(end - overlap, start + 1)
        while next_start > start + 1 and word_ids[next_start] == word_ids[next_start - 1]:
            next_start -= 1  # start the next window at a word start too
        start = next_start


def embedding_text(chunk_text: str, *, title: str, section: str | None) -> str:
    """What gets embedded: the chunk with its document title and section in front, which helps the
    model place short chunks (titles carry much of a document's topic)."""
    prefix = title if not section else f"{title} — {section}"
    return f"{prefix[:PREFIX_CHARS]}\n{chunk_text}"
