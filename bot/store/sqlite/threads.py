"""The channel threads the bot is part of: their messages as Slack delivered them, and how far the bot has looked.

Slack timestamps ("1700000000.000100": ten digits, a dot, six digits) sort correctly as text, so ts
columns compare with < and > directly.
"""
from __future__ import annotations

import json
import time
from typing import Sequence

from bot.store.records import SlackThread, ThreadMessage
from bot.store.sqlite.base import SqliteBase

MIGRATIONS: list[tuple[str, str]] = [
    (
        "threads_001_init",
        """
        CREATE TABLE slack_threads (
            channel_id TEXT NOT NULL,
            thread_ts TEXT NOT NULL,
            synced_ts TEXT,
            seen_ts TEXT,
            answered INTEGER NOT NULL DEFAULT 0,
            updated_at REAL NOT NULL,
            PRIMARY KEY (channel_id, thread_ts)
        );
        CREATE TABLE slack_thread_messages (
            channel_id TEXT NOT NULL,
            ts TEXT NOT NULL,
            thread_ts TEXT NOT NULL,
            user_id TEXT NOT NULL,
            bot_id TEXT,
            text TEXT NOT NULL,
            file_names_json TEXT NOT NULL DEFAULT '[]',
            shown INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (channel_id, ts)
        );
        CREATE INDEX slack_thread_messages_by_thread ON slack_thread_messages(channel_id, thread_ts, ts);
        """,
    ),
    (
        "threads_002_tokens_and_earlier_threads",
        """
        ALTER TABLE slack_thread_messages ADD COLUMN tokens INTEGER;
        -- Channel threads the bot answered before threads were recorded: replies there are follow-ups,
        -- the next turn reads the thread once (nothing is synced), and the questions already in the
        -- history are flagged as shown so they are not given to the model a second time.
        INSERT OR IGNORE INTO slack_threads(channel_id, thread_ts, synced_ts, seen_ts, answered, updated_at)
            SELECT c.channel_id, c.thread_ts, NULL, NULL, 1, CAST(strftime('%s', 'now') AS REAL)
            FROM conversations c
            WHERE c.channel_id NOT LIKE 'D%' AND c.channel_id != 'console'
              AND EXISTS (SELECT 1 FROM messages m WHERE m.conversation_id = c.id AND m.role = 'assistant');
        INSERT OR IGNORE INTO slack_thread_messages(channel_id, ts, thread_ts, user_id, text, shown)
            SELECT c.channel_id, m.slack_ts, c.thread_ts, '', '', 1
            FROM conversations c JOIN messages m ON m.conversation_id = c.id
            JOIN slack_threads t ON t.channel_id = c.channel_id AND t.thread_ts = c.thread_ts
            WHERE m.role = 'user' AND m.slack_ts IS NOT NULL;
        """,
    ),
]

_UPSERT = (
    "INSERT INTO slack_thread_messages(channel_id, ts, thread_ts, user_id, bot_id, text, file_names_json, tokens)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel_id, ts) DO UPDATE SET text = excluded.text,"
    " file_names_json = excluded.file_names_json, tokens = excluded.tokens,"
    # a placeholder (a question flagged as shown before its message was recorded) gets its author
    " user_id = excluded.user_id, bot_id = excluded.bot_id"
)


class ThreadsMixin(SqliteBase):
    """Store methods for the channel threads the bot is part of."""

    async def slack_thread(self, channel_id: str, thread_ts: str) -> SlackThread | None:
        row = self.row("SELECT synced_ts, seen_ts, answered FROM slack_threads WHERE channel_id = ? AND thread_ts = ?",
                       (channel_id, thread_ts))
        return SlackThread(channel_id, thread_ts, row[0], row[1], bool(row[2])) if row else None

    async def mark_thread(self, channel_id: str, thread_ts: str, *, synced_ts: str | None = None,
                          seen_ts: str | None = None, answered: bool = False, shown_ts: Sequence[str] = ()) -> None:
        """Create the thread's row if needed; move `synced_ts`/`seen_ts` forward (never back); set `answered`;
        flag the messages `shown_ts` as given to the model (a placeholder row if not recorded yet)."""
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO slack_thread_messages(channel_id, ts, thread_ts, user_id, text, shown)"
                " VALUES (?, ?, ?, '', '', 1) ON CONFLICT (channel_id, ts) DO UPDATE SET shown = 1",
                [(channel_id, ts, thread_ts) for ts in shown_ts])
            conn.execute(
                "INSERT INTO slack_threads(channel_id, thread_ts, synced_ts, seen_ts, answered, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (channel_id, thread_ts) DO UPDATE SET"
                " synced_ts = CASE WHEN excluded.synced_ts IS NULL THEN slack_threads.synced_ts"
                "   WHEN slack_threads.synced_ts IS NULL OR excluded.synced_ts > slack_threads.synced_ts"
                "   THEN excluded.synced_ts ELSE slack_threads.synced_ts END,"
                " seen_ts = CASE WHEN excluded.seen_ts IS NULL THEN slack_threads.seen_ts"
                "   WHEN slack_threads.seen_ts IS NULL OR excluded.seen_ts > slack_threads.seen_ts"
                "   THEN excluded.seen_ts ELSE slack_threads.seen_ts END,"
                " answered = MAX(slack_threads.answered, excluded.answered), updated_at = excluded.updated_at",
                (channel_id, thread_ts, synced_ts, seen_ts, int(answered), time.time()))

    async def record_thread_messages(self, channel_id: str, thread_ts: str, messages: Sequence[ThreadMessage], *,
                                     synced_ts: str | None = None, advance_synced: bool = False) -> bool:
        """Upsert messages of a thread the bot is part of (False, and nothing written, for any other thread).
        `synced_ts` (or, with `advance_synced`, the newest message) becomes the point up to which the copy
        is complete."""
        with self.transaction() as conn:
            if not conn.execute("SELECT 1 FROM slack_threads WHERE channel_id = ? AND thread_ts = ?",
                                (channel_id, thread_ts)).fetchone():
                return False
            conn.executemany(_UPSERT, [
                (channel_id, m.ts, thread_ts, m.user_id, m.bot_id, m.text, json.dumps(list(m.file_names)), m.tokens)
                for m in messages])
            if advance_synced and messages:
                synced_ts = max(m.ts for m in messages)
            if synced_ts:
                conn.execute(
                    "UPDATE slack_threads SET synced_ts = ?, updated_at = ? WHERE channel_id = ? AND thread_ts = ?"
                    " AND (synced_ts IS NULL OR synced_ts < ?)", (synced_ts, time.time(), channel_id, thread_ts,
                                                                  synced_ts))
        return True

    async def update_thread_message(self, channel_id: str, message: ThreadMessage) -> bool:
        """An edit: the recorded text and files change, if the message was recorded."""
        with self.transaction() as conn:
            return conn.execute(
                "UPDATE slack_thread_messages SET text = ?, file_names_json = ?, tokens = ? WHERE channel_id = ? AND ts = ?",
                (message.text, json.dumps(list(message.file_names)), message.tokens, channel_id,
                 message.ts)).rowcount > 0

    async def delete_thread_message(self, channel_id: str, ts: str) -> bool:
        with self.transaction() as conn:
            return conn.execute("DELETE FROM slack_thread_messages WHERE channel_id = ? AND ts = ?",
                                (channel_id, ts)).rowcount > 0

    async def thread_messages(self, channel_id: str, thread_ts: str, *, after_ts: str | None = None,
                              limit: int = 2000) -> list[ThreadMessage]:
        """The newest `limit` recorded messages after `after_ts` not yet shown to the model, oldest first."""
        rows = self.rows(
            "SELECT ts, user_id, text, file_names_json, bot_id, tokens FROM slack_thread_messages"
            " WHERE channel_id = ? AND thread_ts = ? AND ts > ? AND shown = 0 ORDER BY ts DESC LIMIT ?",
            (channel_id, thread_ts, after_ts or "", limit))
        return [ThreadMessage(ts=r[0], user_id=r[1], text=r[2], file_names=tuple(json.loads(r[3])), bot_id=r[4],
                              tokens=r[5])
                for r in reversed(rows)]
