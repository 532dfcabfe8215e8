"""`threadbot db copy`: an SQLite database copied into PostgreSQL, idempotently (a second run copies nothing new).

History, usage, limits, feedback, threads, blobs and channel settings keep their ids and times (rows the target
already has are left alone, so an interrupted copy resumes). Knowledge goes through the PostgreSQL
store's own write path, vectors included, so its postings and indexes are built as for an upload; its
documents and chunks keep their ids and times too. A document the target already has (under its id,
or by content in that scope) is skipped.
"""
from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable

from bot.errors import ConfigError
from bot.store.records import NewChunk, NewDocument

if TYPE_CHECKING:
    from bot.store.postgres import PostgresStore
    from bot.store.sqlite import SqliteStore

Progress = Callable[[str, int, int], None]  # (table, rows done, rows in all)
BATCH = 1000


def _boolean(v: Any) -> bool:
    return bool(v)


# (table, its key for ON CONFLICT, [(SQLite column, PostgreSQL column, conversion)], has an identity id).
# content stays JSON text byte for byte (json, not jsonb): prompt caching compares request prefixes exactly.
_TABLES: list[tuple[str, str, list[tuple[str, str, Callable[[Any], Any] | None]], bool]] = [
    ("conversations", "id", [(c, c, None) for c in
                             ("id", "team_id", "channel_id", "thread_ts", "user_id", "title", "created_at")], True),
    ("messages", "id", [("id", "id", None), ("conversation_id", "conversation_id", None), ("role", "role", None),
                        ("content_json", "content", None), ("token_count", "token_count", None),
                        ("user_id", "user_id", None), ("slack_ts", "slack_ts", None),
                        ("created_at", "created_at", None)], True),
    ("events", "event_key", [("event_key", "event_key", None), ("received_at", "received_at", None)], False),
    ("usage", "id", [(c, c, Decimal if c == "cost_usd" else None) for c in
                     ("id", "created_at", "team_id", "user_id", "channel_id", "thread_ts", "surface", "model",
                      "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
                      "cost_usd", "latency_ms", "stop_reason", "error")], True),
    ("requests", "id", [(c, c, None) for c in ("id", "created_at", "team_id", "user_id")], True),
    ("feedback", "id", [(c, c, None) for c in ("id", "team_id", "channel_id", "message_ts", "thread_ts", "user_id",
                                               "model", "vote", "created_at", "updated_at")], True),
    ("assistant_threads", "channel_id, thread_ts",
     [(c, c, _boolean if c == "titled" else None) for c in
      ("channel_id", "thread_ts", "user_id", "context_channel_id", "context_team_id", "titled", "started_at",
       "updated_at")], False),
    ("slack_threads", "channel_id, thread_ts",
     [(c, c, _boolean if c == "answered" else None) for c in
      ("channel_id", "thread_ts", "synced_ts", "seen_ts", "answered", "updated_at")], False),
    ("slack_thread_messages", "channel_id, ts",
     [("channel_id", "channel_id", None), ("ts", "ts", None), ("thread_ts", "thread_ts", None),
      ("user_id", "user_id", None), ("bot_id", "bot_id", None), ("text", "text", None),
      ("file_names_json", "file_names", None), ("shown", "shown", _boolean), ("tokens", "tokens", None)], False),
    ("blobs", "sha256", [(c, c, None) for c in ("sha256", "media_type", "data", "created_at")], False),
    ("channel_settings", "channel_id", [(c, c, None) for c in ("channel_id", "team_id", "prompt", "model", "tools",
                                                               "autoanswer", "updated_by", "updated_at")], False),
    ("channel_setting_changes", "id", [(c, c, None) for c in ("id", "channel_id", "team_id", "field", "old_value",
                                                              "new_value", "user_id", "changed_at")], True),
]


async def copy_sqlite_to_postgres(source: "SqliteStore", target: "PostgresStore", *,
                                  progress: Progress = lambda table, done, total: None) -> dict[str, int]:
    """Copy every table and the knowledge base; returns the rows (documents for knowledge) newly written."""
    await _check_target(source, target)
    written: dict[str, int] = {}
    for table, key, columns, identity in _TABLES:
        written[table] = await _copy_table(source, target, table, key, columns, identity, progress)
    written["knowledge_documents"] = await _copy_knowledge(source, target, progress)
    return written


async def _check_target(source: "SqliteStore", target: "PostgresStore") -> None:
    """The target's history must be empty or an earlier copy of this source: ids are kept, so another
    bot's rows would collide with these."""
    async with target.pool.connection() as conn:
        row = await (await conn.execute(
            "SELECT count(*), max(id) FROM conversations")).fetchone()
        count, top = row
        if not count:
            return
        last = await (await conn.execute("SELECT channel_id, thread_ts FROM conversations WHERE id = %s",
                                         (top,))).fetchone()
    mine = source.row("SELECT count(*) FROM conversations WHERE id <= ?", (top,))[0]
    same = source.row("SELECT channel_id, thread_ts FROM conversations WHERE id = ?", (top,))
    if mine != count or same is None or tuple(same) != tuple(last):
        raise ConfigError("db copy: the target database already holds conversations that are not from this "
                          "SQLite file; copy into a new, empty database (threadbot creates the tables).")


async def _copy_table(source: "SqliteStore", target: "PostgresStore", table: str, key: str,
                      columns: list[tuple[str, str, Callable[[Any], Any] | None]], identity: bool,
                      progress: Progress) -> int:
    total = source.row(f"SELECT count(*) FROM {table}")[0]
    src_cols = ", ".join(c for c, _, _ in columns)
    dst_cols = ", ".join(c for _, c, _ in columns)
    casts = ", ".join("%s::json" if c == "content" else "%s::jsonb" if c == "file_names" else "%s"
                      for _, c, _ in columns)
    sql = (f"INSERT INTO {table}({dst_cols}) {'OVERRIDING SYSTEM VALUE ' if identity else ''}VALUES ({casts})"
           f" ON CONFLICT ({key}) DO NOTHING")
    if table == "conversations":
        sql = sql.replace(f"ON CONFLICT ({key}) DO NOTHING", "ON CONFLICT DO NOTHING")
    done = written = 0
    progress(table, 0, total)
    last = 0
    while True:
        # Pages by rowid (keyset): the source may be a live bot's file, where OFFSET could skip rows.
        rows = source.rows(f"SELECT {src_cols}, rowid FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                           (last, BATCH))
        if not rows:
            break
        last = rows[-1][-1]
        values = [[conv(v) if conv and v is not None else v for v, (_, _, conv) in zip(r, columns)] for r in rows]
        async with target.pool.connection() as conn, conn.transaction():
            cur = conn.cursor()
            await cur.executemany(sql, values)
            written += max(cur.rowcount, 0)
        done += len(rows)
        progress(table, done, total)
    if identity:
        async with target.pool.connection() as conn:
            # New rows the replicas write continue after the copied ids.
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                               f" greatest((SELECT max(id) FROM {table}), 1))")
    return written


async def _copy_knowledge(source: "SqliteStore", target: "PostgresStore", progress: Progress) -> int:
    """Documents and chunks keep their ids and times (so a copied reference still names the same chunk);
    a document the target already holds under its id, or whose content it holds in that scope, is skipped."""
    await target.knowledge_sweep()  # the rows of an interrupted earlier copy
    documents = list(reversed(await source.knowledge_documents()))  # oldest first
    have = {(d.scope, d.sha256) for d in await target.knowledge_documents()}
    vectors: dict[tuple[str, int, str], dict[int, Any]] = {}
    written = 0
    progress("knowledge", 0, len(documents))
    for done, doc in enumerate(documents, 1):
        if (doc.scope, doc.sha256) not in have and await _free_for(target, doc):
            space = (doc.embedding_model, doc.embedding_dim, doc.scope)
            if space not in vectors:
                found = await source.knowledge_scope_vectors(model=space[0], dim=space[1], scope=space[2])
                vectors[space] = dict(zip(found.ids.tolist(), found.vectors))
            chunks = await source.knowledge_document_chunks(doc.id)
            missing = [c.id for c in chunks if c.id not in vectors[space]]
            if missing:
                raise ConfigError(f"db copy: document {doc.id} ({doc.title!r}) has chunks without vectors "
                                  f"({len(missing)}); run `threadbot run` once so they are re-embedded, then copy.")
            await _check_chunk_ids(target, doc.id, [c.id for c in chunks])
            new_id = await target.knowledge_begin_document(NewDocument(
                scope=doc.scope, title=doc.title, mimetype=doc.mimetype, kind=doc.kind, size_bytes=doc.size_bytes,
                uploaded_by=doc.uploaded_by, slack_file_id=doc.slack_file_id, permalink=doc.permalink,
                embedding_model=doc.embedding_model, embedding_dim=doc.embedding_dim),
                keep_id=doc.id, created_at=doc.created_at)
            rows = [(NewChunk(ordinal=c.ordinal, text=c.text, section=c.section, page=c.page), vectors[space][c.id])
                    for c in chunks]
            ids = [c.id for c in chunks]
            while rows:
                n = await target.knowledge_write_chunks(new_id, rows, keep_ids=ids)
                rows, ids = rows[n:], ids[n:]
            for retired in await target.knowledge_publish_document(new_id, sha256=doc.sha256,
                                                                  chunk_count=len(chunks)):
                await target.knowledge_purge_document(retired)
            written += 1
        progress("knowledge", done, len(documents))
    async with target.pool.connection() as conn:
        for table in ("knowledge_documents", "knowledge_chunks"):  # new uploads continue after the copied ids
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                               f" greatest((SELECT max(id) FROM {table}), 1))")
    return written


async def _free_for(target: "PostgresStore", doc: Any) -> bool:
    """True if the document's id is free in the target; False if the target has this very document
    (copied before). Rows an interrupted copy left under that id are removed first; another document
    under that id means the target is not a copy of this source."""
    async with target.pool.connection() as conn:
        row = await (await conn.execute("SELECT scope, sha256, status FROM knowledge_documents WHERE id = %s",
                                        (doc.id,))).fetchone()
    if row is None:
        return True
    scope, sha256, status = row
    if status == "ready" and (scope, sha256) == (doc.scope, doc.sha256):
        return False
    if status == "ready":
        raise ConfigError(f"db copy: the target's knowledge document {doc.id} is not this SQLite file's "
                          f"{doc.title!r}; copy into a new, empty database (threadbot creates the tables).")
    await target.knowledge_purge_document(doc.id)  # half-written by an interrupted copy
    return True


async def _check_chunk_ids(target: "PostgresStore", document_id: int, chunk_ids: list[int]) -> None:
    async with target.pool.connection() as conn:
        row = await (await conn.execute("SELECT id, document_id FROM knowledge_chunks WHERE id = ANY(%s) LIMIT 1",
                                        (chunk_ids,))).fetchone()
    if row is not None:
        raise ConfigError(f"db copy: the target already holds knowledge chunk {row[0]} (of document {row[1]}), "
                          f"which is document {document_id}'s in this SQLite file; copy into a new, empty database.")


def describe(written: dict[str, int]) -> str:
    """One line: what a copy wrote."""
    return ", ".join(f"{table} {n}" for table, n in written.items() if n) or "nothing new (already copied)"


__all__ = ["copy_sqlite_to_postgres", "describe"]
