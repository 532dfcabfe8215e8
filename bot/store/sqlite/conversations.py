"""Conversations (one per Slack thread) and their messages."""
from __future__ import annotations

import json
import time

from bot.messages import Message
from bot.store.records import StoredMessage
from bot.store.sqlite.base import SqliteBase

MIGRATIONS = [
    (
        "conversations_001_init",
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            team_id TEXT NOT NULL,
            channel_id TEXT NOT NULL,
            thread_ts TEXT NOT NULL,
            user_id TEXT NOT NULL,
            title TEXT,
            created_at REAL NOT NULL,
            UNIQUE (channel_id, thread_ts)
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            content_json TEXT NOT NULL,
            token_count INTEGER,
            user_id TEXT,
            slack_ts TEXT,
            created_at REAL NOT NULL
        );
        CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
        CREATE TABLE events (
            event_key TEXT PRIMARY KEY,
            received_at REAL NOT NULL
        );
        """,
    ),
]


class ConversationsMixin(SqliteBase):
    """Store methods for threads and their history."""

    async def conversation_id(self, *, team_id: str, channel_id: str, thread_ts: str, user_id: str) -> int:
        """The id of the conversation for this thread, created on first use."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT id FROM conversations WHERE channel_id = ? AND thread_ts = ?",
                (channel_id, thread_ts),
            ).fetchone()
            if row:
                return row[0]
            cur = conn.execute(
                "INSERT INTO conversations(team_id, channel_id, thread_ts, user_id, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (team_id, channel_id, thread_ts, user_id, time.time()),
            )
            return cur.lastrowid

    async def history(self, conversation_id: int) -> list[StoredMessage]:
        rows = self.rows(
            "SELECT id, role, content_json, token_count FROM messages WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        )
        return [
            StoredMessage(id=r[0], message=Message.from_json({"role": r[1], "content": json.loads(r[2])}),
                          token_count=r[3])
            for r in rows
        ]

    async def last_role(self, conversation_id: int) -> str | None:
        """The role of the newest stored message, or None for an empty conversation."""
        row = self.row("SELECT role FROM messages WHERE conversation_id = ? ORDER BY id DESC LIMIT 1",
                       (conversation_id,))
        return row[0] if row else None

    async def append_messages(
        self,
        conversation_id: int,
        messages: list[Message],
        *,
        token_counts: list[int | None] | None = None,
        user_id: str | None = None,
        slack_ts: str | None = None,
    ) -> list[int]:
        """Append messages atomically (a tool_use and its tool_result land together or not at all)."""
        counts = token_counts or [None] * len(messages)
        now = time.time()
        ids = []
        with self.transaction() as conn:
            for message, count in zip(messages, counts):
                cur = conn.execute(
                    "INSERT INTO messages(conversation_id, role, content_json, token_count, user_id,"
                    " slack_ts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (conversation_id, message.role, json.dumps(message.to_json()["content"]), count,
                     user_id, slack_ts, now),
                )
                ids.append(cur.lastrowid)
        return ids
