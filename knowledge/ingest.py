"""Ingestion: parse → chunk → embed (in batches, spilled to a temp file) → batched write.

Embedding happens before anything is written; the chunks and their vectors wait in a temporary spill
file, so a 50 MB text file never sits in memory whole. The document is then written in short
transactions while it is invisible 'pending' and published in one short last one, so the bot's
other store calls never wait behind a large upload, and a failure at any point leaves no rows.
Parsing, chunking and embedding run in worker threads; every store call is awaited on the event loop,
which runs other work between write batches. Progress callbacks run on the loop.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Literal

import numpy as np

from bot.store import NewChunk, NewDocument
from knowledge.chunk import chunk_blocks, embedding_text
from knowledge.errors import EmptyDocument, FileTooLarge
from knowledge.parse import TEXT_KINDS, Block, detect_kind, parse_bytes, parse_lines, read_lines
from knowledge.scopes import validate_scope

if TYPE_CHECKING:
    from bot.store import Store
    from knowledge.embed import Embedder

log = logging.getLogger(__name__)

EMBED_BATCH = 64
# Chunks offered to one write transaction (the store may take fewer: SQLite stops after ~12 ms).
WRITE_BATCH = 200


@dataclass(frozen=True)
class Progress:
    """One step of an ingestion, for a progress message the lead edits in Slack."""

    stage: Literal["reading", "indexing", "done"]
    filename: str
    done: int = 0
    total: int = 0
    seconds: float = 0.0

    def text(self) -> str:
        if self.stage == "reading":
            return f"Reading {self.filename}…"
        if self.stage == "indexing":
            return f"Indexing {self.filename}: {self.done}/{self.total} chunks…"
        return f"Added {self.filename}: {self.total} chunks in {self.seconds:.1f} s."


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class IngestResult:
    document_id: int
    title: str
    scope: str
    kind: str
    chunks: int
    seconds: float
    sha256: str
    embedding_model: str
    replaced: bool  # the same content was already in this scope and has been replaced


async def ingest_bytes(
    store: "Store",
    embedder: "Embedder",
    *,
    data: bytes,
    filename: str,
    mimetype: str | None,
    scope: str,
    uploaded_by: str,
    slack_file_id: str | None = None,
    permalink: str | None = None,
    progress: ProgressCallback | None = None,
    max_bytes: int | None = None,
) -> IngestResult:
    """Add a file held in memory (e.g. downloaded from Slack) to the knowledge base."""
    validate_scope(scope)
    started = time.perf_counter()
    _report(progress, Progress("reading", filename))
    _check_size(len(data), max_bytes, filename)
    kind = detect_kind(filename, mimetype, data[:8192])

    def spill(out: Path) -> int:
        return _write_spill(parse_bytes(kind, data, filename=filename), out)

    sha256 = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    return await _ingest(
        store, embedder, spill=spill, kind=kind, sha256=sha256, size=len(data),
        filename=filename, mimetype=mimetype, scope=scope, uploaded_by=uploaded_by,
        slack_file_id=slack_file_id, permalink=permalink, progress=progress, started=started,
    )


async def ingest_path(
    store: "Store",
    embedder: "Embedder",
    path: str | Path,
    *,
    scope: str = "workspace",
    uploaded_by: str = "cli",
    mimetype: str | None = None,
    title: str | None = None,
    progress: ProgressCallback | None = None,
    max_bytes: int | None = None,
) -> IngestResult:
    """Add a file from disk; text, Markdown, CSV and code are streamed, never loaded whole."""
    validate_scope(scope)
    path = Path(path)
    filename = title or path.name
    started = time.perf_counter()
    _report(progress, Progress("reading", filename))
    size = path.stat().st_size
    _check_size(size, max_bytes, filename)
    with path.open("rb") as raw:
        head = raw.read(8192)
    kind = detect_kind(path.name, mimetype, head)
    if kind not in TEXT_KINDS:
        return await ingest_bytes(
            store, embedder, data=await asyncio.to_thread(path.read_bytes), filename=filename, mimetype=mimetype,
            scope=scope, uploaded_by=uploaded_by, progress=progress, max_bytes=max_bytes,
        )
    encoding = "utf-8-sig" if not head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-16"

    def spill(out: Path) -> int:
        with path.open("r", encoding=encoding, errors="replace", newline="") as stream:
            return _write_spill(parse_lines(kind, read_lines(stream), filename=path.name), out)

    return await _ingest(
        store, embedder, spill=spill, kind=kind, sha256=await asyncio.to_thread(_file_sha256, path), size=size,
        filename=filename, mimetype=mimetype, scope=scope, uploaded_by=uploaded_by, slack_file_id=None,
        permalink=None, progress=progress, started=started,
    )


async def _ingest(
    store: "Store",
    embedder: "Embedder",
    *,
    spill: Callable[[Path], int],
    kind: str,
    sha256: str,
    size: int,
    filename: str,
    mimetype: str | None,
    scope: str,
    uploaded_by: str,
    slack_file_id: str | None,
    permalink: str | None,
    progress: ProgressCallback | None,
    started: float,
) -> IngestResult:
    with tempfile.TemporaryDirectory(prefix="threadbot-ingest-") as tmp:
        chunks_path = Path(tmp) / "chunks.jsonl"
        vectors_path = Path(tmp) / "vectors.f32"
        total = await asyncio.to_thread(spill, chunks_path)  # parsing and chunking, off the loop
        if total == 0:
            raise EmptyDocument(
                f"I couldn't find any text in {filename} (a scanned PDF holds only images, for example)."
            )
        _report(progress, Progress("indexing", filename, 0, total))
        done = 0
        with vectors_path.open("wb") as out:
            for batch in _batches(_read_spill(chunks_path), EMBED_BATCH):
                texts = [embedding_text(c.text, title=filename, section=c.section) for c in batch]
                vectors = await asyncio.to_thread(embedder.embed, texts)
                out.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
                done += len(batch)
                _report(progress, Progress("indexing", filename, done, total))
        document = NewDocument(
            scope=scope, title=filename, mimetype=mimetype, kind=kind, size_bytes=size, uploaded_by=uploaded_by,
            slack_file_id=slack_file_id, permalink=permalink, embedding_model=embedder.model,
            embedding_dim=embedder.dim,
        )
        document_id, replaced = await store_document(
            store, document, sha256=sha256, chunks=_with_vectors(_read_spill(chunks_path), vectors_path, embedder.dim))
    seconds = time.perf_counter() - started
    _report(progress, Progress("done", filename, total, total, seconds))
    return IngestResult(
        document_id=document_id, title=filename, scope=scope, kind=kind, chunks=total, seconds=seconds,
        sha256=sha256, embedding_model=embedder.model, replaced=bool(replaced),
    )


async def store_document(
    store: "Store",
    document: NewDocument,
    *,
    sha256: str,
    chunks: Iterable[tuple[NewChunk, np.ndarray]] | AsyncIterable[tuple[NewChunk, np.ndarray]],
) -> tuple[int, list[int]]:
    """Write a document and all its chunks; returns (new id, replaced ids).

    The rows go in batches of up to WRITE_BATCH chunks, each its own short transaction, while the
    document is 'pending' and invisible; then one short transaction makes it 'ready' and retires a
    document with the same sha256 in the same scope (replaced, not duplicated), which stays
    searchable until then. Any failure purges what was written. `chunks` may be a generator (read
    from a spill file), so a large document never sits in memory whole.
    """
    document_id = await store.knowledge_begin_document(document)
    try:
        count = 0
        source = _aiter(chunks)
        rows: list[tuple[NewChunk, np.ndarray]] = []
        exhausted = False
        while True:
            while not exhausted and len(rows) < WRITE_BATCH:
                try:
                    rows.append(await anext(source))
                except StopAsyncIteration:
                    exhausted = True
            if not rows:
                break
            written = await store.knowledge_write_chunks(document_id, rows)
            count += written
            del rows[:written]
            await asyncio.sleep(0)  # the loop's other work (its store calls too) runs between batches
        replaced = await store.knowledge_publish_document(document_id, sha256=sha256, chunk_count=count)
    except BaseException:
        try:
            await store.knowledge_purge_document(document_id)
        except Exception:  # the sweep at the next start-up removes what is left
            log.exception("could not purge half-written knowledge document %s", document_id)
        raise
    for old in replaced:
        await store.knowledge_purge_document(old)
    return document_id, replaced


async def reembed(store: "Store", embedder: "Embedder", *, progress: ProgressCallback | None = None) -> int:
    """Re-embed every document stored with another model or dimension; returns how many were moved.

    Run at start-up after THREADBOT_EMBEDDER changes: vectors from two models are never compared.
    Each document moves in its own transaction, so an interruption loses nothing.
    """
    moved = 0
    for document_id in await store.knowledge_document_ids_outside(embedder.model, embedder.dim):
        document = await store.knowledge_document(document_id)
        if document is None:
            continue
        chunks = await store.knowledge_document_chunks(document_id)
        _report(progress, Progress("indexing", document.title, 0, len(chunks)))
        vectors: dict[int, np.ndarray] = {}
        for start in range(0, len(chunks), EMBED_BATCH):
            batch = chunks[start:start + EMBED_BATCH]
            texts = [embedding_text(c.text, title=c.title, section=c.section) for c in batch]
            embedded = await asyncio.to_thread(embedder.embed, texts)
            vectors.update({c.id: embedded[i] for i, c in enumerate(batch)})
        await store.knowledge_replace_vectors(
            document_id, embedding_model=embedder.model, embedding_dim=embedder.dim, vectors=vectors
        )
        moved += 1
    return moved


def _write_spill(blocks: Iterator[Block], path: Path) -> int:
    """Chunk the blocks into a JSON-lines spill file; returns how many chunks it holds."""
    total = 0
    with path.open("w", encoding="utf-8") as out:
        for chunk in chunk_blocks(blocks):
            out.write(json.dumps([chunk.text, chunk.section, chunk.page]) + "\n")
            total += 1
    return total


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as raw:
        for piece in iter(lambda: raw.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def _read_spill(path: Path) -> Iterator[NewChunk]:
    with path.open("r", encoding="utf-8") as spill:
        for ordinal, line in enumerate(spill):
            text, section, page = json.loads(line)
            yield NewChunk(ordinal=ordinal, text=text, section=section, page=page)


def _with_vectors(chunks: Iterator[NewChunk], vectors_path: Path, dim: int) -> Iterator[tuple[NewChunk, np.ndarray]]:
    width = dim * 4
    with vectors_path.open("rb") as vectors:
        for chunk in chunks:
            yield chunk, np.frombuffer(vectors.read(width), dtype=np.float32)


async def _aiter(items: Iterable[tuple[NewChunk, np.ndarray]] | AsyncIterable[tuple[NewChunk, np.ndarray]]
                 ) -> AsyncIterator[tuple[NewChunk, np.ndarray]]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


def _batches(items: Iterator[NewChunk], size: int) -> Iterator[list[NewChunk]]:
    batch: list[NewChunk] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _check_size(size: int, max_bytes: int | None, filename: str) -> None:
    if max_bytes is not None and size > max_bytes:
        raise FileTooLarge(
            f"{filename} is {size / 1_048_576:.1f} MB; the knowledge base accepts files up to "
            f"{max_bytes / 1_048_576:.0f} MB."
        )


def _report(progress: ProgressCallback | None, event: Progress) -> None:
    if progress is not None:
        progress(event)
