"""Per-channel settings (/threadbot): prompt, model, tools, auto-answer, and the log of every change."""
from __future__ import annotations

import time
from typing import Mapping

from bot.store.channel_rows import check_changes, diff_changes, settings_from_row
from bot.store.records import SETTING_FIELDS, ChannelSettings, SettingChange
from bot.store.sqlite.base import SqliteBase

# Values cross the interface as text, the same text the change log keeps: tools as comma-separated
# names, auto-answer as 'on'; NULL is the bot's default (every tool, auto-answer off).
MIGRATIONS: list[tuple[str, str]] = [
    (
        "channel_settings_001",
        """
        CREATE TABLE channel_settings (
            channel_id TEXT PRIMARY KEY,
            team_id TEXT NOT NULL,
            prompt TEXT,
            model TEXT,
            tools TEXT,
            autoanswer TEXT,
            updated_by TEXT NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE channel_setting_changes (
            id INTEGER PRIMARY KEY,
            channel_id TEXT NOT NULL,
            team_id TEXT NOT NULL,
            field TEXT NOT NULL CHECK (field IN ('prompt', 'model', 'tools', 'autoanswer')),
            old_value TEXT,
            new_value TEXT,
            user_id TEXT NOT NULL,
            changed_at REAL NOT NULL
        );
        CREATE INDEX channel_setting_changes_by_channel ON channel_setting_changes(channel_id, id);
        """,
    ),
]

_COLUMNS = "channel_id, prompt, model, tools, autoanswer, updated_by, updated_at"


class ChannelSettingsMixin(SqliteBase):
    async def channel_settings(self, channel_id: str) -> ChannelSettings | None:
        row = self.row(f"SELECT {_COLUMNS} FROM channel_settings WHERE channel_id = ?", (channel_id,))
        return settings_from_row(row) if row else None

    async def all_channel_settings(self) -> list[ChannelSettings]:
        return [settings_from_row(r) for r in self.rows(f"SELECT {_COLUMNS} FROM channel_settings ORDER BY channel_id")]

    async def change_channel_settings(self, channel_id: str, *, team_id: str, user_id: str,
                                      changes: Mapping[str, str | None], now: float | None = None
                                      ) -> list[SettingChange]:
        check_changes(changes)
        now = time.time() if now is None else now
        with self.transaction() as conn:
            row = conn.execute("SELECT prompt, model, tools, autoanswer FROM channel_settings WHERE channel_id = ?",
                               (channel_id,)).fetchone()
            done, current = diff_changes(channel_id, row, changes, user_id=user_id, now=now)
            if not done:
                return []
            if all(v is None for v in current.values()):
                conn.execute("DELETE FROM channel_settings WHERE channel_id = ?", (channel_id,))
            else:
                conn.execute(
                    "INSERT INTO channel_settings(channel_id, team_id, prompt, model, tools, autoanswer, updated_by,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel_id) DO UPDATE SET"
                    " team_id = excluded.team_id, prompt = excluded.prompt, model = excluded.model,"
                    " tools = excluded.tools, autoanswer = excluded.autoanswer,"
                    " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                    (channel_id, team_id, *(current[f] for f in SETTING_FIELDS), user_id, now))
            conn.executemany(
                "INSERT INTO channel_setting_changes(channel_id, team_id, field, old_value, new_value, user_id,"
                " changed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(channel_id, team_id, c.field, c.old, c.new, user_id, now) for c in done])
        return done

    async def channel_setting_changes(self, channel_id: str, *, limit: int = 10) -> list[SettingChange]:
        rows = self.rows(
            "SELECT channel_id, field, old_value, new_value, user_id, changed_at FROM channel_setting_changes"
            " WHERE channel_id = ? ORDER BY id DESC LIMIT ?", (channel_id, limit))
        return [SettingChange(*r) for r in rows]
