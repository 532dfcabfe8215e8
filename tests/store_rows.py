"""Rows the tests look at directly, read with SQL on a SqliteStore's connection (no product code needs them)."""
from __future__ import annotations

from decimal import Decimal

from bot.store import UsageRow
from bot.store.records import Vote
from bot.store.sqlite import SqliteStore
from dataclasses import dataclass


@dataclass(frozen=True)
class FeedbackVote:
    channel_id: str
    message_ts: str
    user_id: str
    vote: Vote
    model: str | None
    thread_ts: str | None


def usage_rows(store: SqliteStore, *, user_id: str | None = None, since: float = 0.0) -> list[UsageRow]:
    sql = ("SELECT team_id, user_id, channel_id, thread_ts, surface, model, input_tokens, output_tokens,"
           " cache_creation_input_tokens, cache_read_input_tokens, cost_usd, latency_ms, stop_reason,"
           " error, created_at FROM usage WHERE created_at >= ?")
    params: list[object] = [since]
    if user_id is not None:
        sql += " AND user_id = ?"
        params.append(user_id)
    return [UsageRow(*r[:10], cost_usd=Decimal(r[10]), latency_ms=r[11], stop_reason=r[12], error=r[13],
                     created_at=r[14])
            for r in store.rows(sql + " ORDER BY id", params)]


def requests_since(store: SqliteStore, *, user_id: str, since: float) -> int:
    return store.row("SELECT COUNT(*) FROM requests WHERE user_id = ? AND created_at > ?", (user_id, since))[0]


def feedback_votes(store: SqliteStore, *, channel_id: str, message_ts: str) -> list[FeedbackVote]:
    return [FeedbackVote(*row) for row in store.rows(
        "SELECT channel_id, message_ts, user_id, vote, model, thread_ts FROM feedback"
        " WHERE channel_id = ? AND message_ts = ? ORDER BY user_id", (channel_id, message_ts))]


def knowledge_count_rows(store: SqliteStore, document_id: int) -> dict[str, int]:
    """How many rows each index holds for a document."""
    if not isinstance(store, SqliteStore):
        return _pg_counts(store, document_id)
    ids = [r[0] for r in store.rows("SELECT id FROM knowledge_chunks WHERE document_id = ?", (document_id,))]
    counts = {"documents": store.row("SELECT count(*) FROM knowledge_documents WHERE id = ?", (document_id,))[0],
              "chunks": len(ids), "fts": 0, "vectors": 0}
    tables = [r[0] for r in store.rows("SELECT table_name FROM knowledge_spaces")]
    for chunk_id in ids:
        counts["fts"] += store.row("SELECT count(*) FROM knowledge_fts WHERE rowid = ?", (chunk_id,))[0]
        for table in tables:
            counts["vectors"] += store.row(f"SELECT count(*) FROM {table} WHERE chunk_id = ?", (chunk_id,))[0]
    return counts


def knowledge_total_rows(store: SqliteStore) -> dict[str, int]:
    """Row counts across the whole knowledge base (nothing half-stored)."""
    if not isinstance(store, SqliteStore):
        return _pg_counts(store, None)
    counts = {"documents": store.row("SELECT count(*) FROM knowledge_documents")[0],
              "chunks": store.row("SELECT count(*) FROM knowledge_chunks")[0],
              "fts": store.row("SELECT count(*) FROM knowledge_fts")[0], "vectors": 0}
    for (table,) in store.rows("SELECT table_name FROM knowledge_spaces"):
        counts["vectors"] += store.row(f"SELECT count(*) FROM {table}")[0]
    return counts


def _pg_counts(store, document_id: int | None) -> dict[str, int]:
    """The same counts on a PostgresStore, on a connection of their own; "fts" are the chunks the
    lexical index (the postings) holds."""
    import psycopg

    where, args = ("WHERE document_id = %s", (document_id,)) if document_id is not None else ("", ())
    with psycopg.connect(store.url) as conn:
        doc_where = "WHERE id = %s" if document_id is not None else ""
        counts = {
            "documents": conn.execute(f"SELECT count(*) FROM knowledge_documents {doc_where}", args).fetchone()[0],
            "chunks": conn.execute(f"SELECT count(*) FROM knowledge_chunks {where}", args).fetchone()[0],
            "fts": conn.execute(f"SELECT count(DISTINCT chunk_id) FROM knowledge_postings {where}", args).fetchone()[0],
            "vectors": 0,
        }
        for (table,) in conn.execute("SELECT table_name FROM knowledge_spaces").fetchall():
            counts["vectors"] += conn.execute(f"SELECT count(*) FROM {table} {where}", args).fetchone()[0]
    return counts
