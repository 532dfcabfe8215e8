"""Ingestion: parse → chunk → embed (in batches, spilled to a temp file) → batched write.

Embedding happens before anything is written; the chunks and their vectors wait in a temporary spill
file, so a 50 MB text file never sits in memory whole. The store then writes the document in short
transactions while it is invisible 'pending' and publishes it in one short last one, so the bot's
other store calls never wait behind a large upload, and a failure at any point leaves no rows.
All functions here block: call them in a worker thread (the *_async wrappers do).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Literal

import numpy as np

from bot.store.knowledge import KnowledgeDocument, NewChunk
from knowledge.chunk import chunk_blocks, embedding_text
from knowledge.errors import DocumentNotFound, EmptyDocument, FileTooLarge, KnowledgeError
from knowledge.parse import TEXT_KINDS, Block, detect_kind, parse_bytes, parse_lines, read_lines

if TYPE_CHECKING:
    from bot.store import Store
    from knowledge.embed import Embedder

EMBED_BATCH = 64
# Slack ids are upper-case; `user:console` is the terminal console's own private scope.
_SCOPE = re.compile(r"^(workspace|channel:[A-Za-z0-9]+|user:[A-Za-z0-9]+)$")


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


def validate_scope(scope: str) -> str:
    if not _SCOPE.match(scope):
        raise KnowledgeError(f"{scope!r} is not a scope: use workspace, channel:C… or user:U….")
    return scope


def ingest_bytes(
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
    blocks = parse_bytes(kind, data, filename=filename)
    return _ingest(
        store, embedder, blocks=blocks, kind=kind, sha256=hashlib.sha256(data).hexdigest(), size=len(data),
        filename=filename, mimetype=mimetype, scope=scope, uploaded_by=uploaded_by,
        slack_file_id=slack_file_id, permalink=permalink, progress=progress, started=started,
    )


def ingest_path(
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
        return ingest_bytes(
            store, embedder, data=path.read_bytes(), filename=filename, mimetype=mimetype, scope=scope,
            uploaded_by=uploaded_by, progress=progress, max_bytes=max_bytes,
        )
    digest = hashlib.sha256()
    with path.open("rb") as raw:
        for piece in iter(lambda: raw.read(1 << 20), b""):
            digest.update(piece)
    encoding = "utf-8-sig" if not head.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-16"
    with path.open("r", encoding=encoding, errors="replace", newline="") as stream:
        blocks = parse_lines(kind, read_lines(stream), filename=path.name)
        return _ingest(
            store, embedder, blocks=blocks, kind=kind, sha256=digest.hexdigest(), size=size, filename=filename,
            mimetype=mimetype, scope=scope, uploaded_by=uploaded_by, slack_file_id=None, permalink=None,
            progress=progress, started=started,
        )


def _ingest(
    store: "Store",
    embedder: "Embedder",
    *,
    blocks: Iterator[Block],
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
        total = 0
        with chunks_path.open("w", encoding="utf-8") as out:
            for chunk in chunk_blocks(blocks):
                out.write(json.dumps([chunk.text, chunk.section, chunk.page]) + "\n")
                total += 1
        if total == 0:
            raise EmptyDocument(
                f"I couldn't find any text in {filename} (a scanned PDF holds only images, for example)."
            )
        _report(progress, Progress("indexing", filename, 0, total))
        done = 0
        with vectors_path.open("wb") as out:
            for batch in _batches(_read_spill(chunks_path), EMBED_BATCH):
                texts = [embedding_text(c.text, title=filename, section=c.section) for c in batch]
                vectors = embedder.embed(texts)
                out.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
                done += len(batch)
                _report(progress, Progress("indexing", filename, done, total))
        document_id, replaced = store.knowledge_add_document(
            scope=scope, title=filename, mimetype=mimetype, kind=kind, sha256=sha256, size_bytes=size,
            uploaded_by=uploaded_by, slack_file_id=slack_file_id, permalink=permalink,
            embedding_model=embedder.model, embedding_dim=embedder.dim,
            chunks=_with_vectors(_read_spill(chunks_path), vectors_path, embedder.dim),
        )
    seconds = time.perf_counter() - started
    _report(progress, Progress("done", filename, total, total, seconds))
    return IngestResult(
        document_id=document_id, title=filename, scope=scope, kind=kind, chunks=total, seconds=seconds,
        sha256=sha256, embedding_model=embedder.model, replaced=bool(replaced),
    )


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


def list_documents(store: "Store", scopes: list[str] | None) -> list[KnowledgeDocument]:
    """Documents visible in these scopes (None: all, for admins and the CLI), newest first."""
    return store.knowledge_documents(scopes)


def delete_document(store: "Store", document_id: int) -> KnowledgeDocument:
    """Remove a document from every index; raises DocumentNotFound. Callers check who may delete."""
    document = store.knowledge_document(document_id)
    if document is None or not store.knowledge_delete_document(document_id):
        raise DocumentNotFound(f"There is no document {document_id} in the knowledge base.")
    return document


def set_scope(store: "Store", document_id: int, scope: str) -> KnowledgeDocument:
    """Move a document to another scope (admins make one workspace-wide with scope="workspace")."""
    validate_scope(scope)
    if not store.knowledge_set_scope(document_id, scope):
        raise DocumentNotFound(f"There is no document {document_id} in the knowledge base.")
    return store.knowledge_document(document_id)  # type: ignore[return-value]


def reembed(store: "Store", embedder: "Embedder", *, progress: ProgressCallback | None = None) -> int:
    """Re-embed every document stored with another model or dimension; returns how many were moved.

    Run at start-up after THREADBOT_EMBEDDER changes: vectors from two models are never compared.
    Each document moves in its own transaction, so an interruption loses nothing.
    """
    moved = 0
    for document_id in store.knowledge_document_ids_outside(embedder.model, embedder.dim):
        document = store.knowledge_document(document_id)
        if document is None:
            continue
        chunks = store.knowledge_document_chunks(document_id)
        _report(progress, Progress("indexing", document.title, 0, len(chunks)))
        vectors: dict[int, np.ndarray] = {}
        for start in range(0, len(chunks), EMBED_BATCH):
            batch = chunks[start:start + EMBED_BATCH]
            embedded = embedder.embed([embedding_text(c.text, title=c.title, section=c.section) for c in batch])
            vectors.update({c.id: embedded[i] for i, c in enumerate(batch)})
        store.knowledge_replace_vectors(
            document_id, embedding_model=embedder.model, embedding_dim=embedder.dim, vectors=vectors
        )
        moved += 1
    return moved


async def ingest_bytes_async(store: "Store", embedder: "Embedder", **kwargs) -> IngestResult:
    """ingest_bytes() in a worker thread. A progress callback runs in that thread: hop back to the
    loop with loop.call_soon_threadsafe if it touches asyncio objects."""
    return await asyncio.to_thread(lambda: ingest_bytes(store, embedder, **kwargs))


async def ingest_path_async(store: "Store", embedder: "Embedder", path: str | Path, **kwargs) -> IngestResult:
    return await asyncio.to_thread(lambda: ingest_path(store, embedder, path, **kwargs))
