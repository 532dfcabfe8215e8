"""PostgreSQL store methods for per-channel settings and their change log (as bot/store/sqlite/channel_settings.py)."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Mapping

from bot.store.records import SETTING_FIELDS, ChannelSettings, SettingChange
from bot.store.channel_rows import check_changes, diff_changes, settings_from_row

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

_COLUMNS = "channel_id, prompt, model, tools, autoanswer, updated_by, updated_at"


class ChannelSettingsMixin:
    pool: "AsyncConnectionPool"

    async def channel_settings(self, channel_id: str) -> ChannelSettings | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(f"SELECT {_COLUMNS} FROM channel_settings WHERE channel_id = %s",
                                            (channel_id,))).fetchone()
        return settings_from_row(row) if row else None

    async def all_channel_settings(self) -> list[ChannelSettings]:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                f"SELECT {_COLUMNS} FROM channel_settings ORDER BY channel_id COLLATE \"C\"")).fetchall()
        return [settings_from_row(r) for r in rows]

    async def change_channel_settings(self, channel_id: str, *, team_id: str, user_id: str,
                                      changes: Mapping[str, str | None], now: float | None = None
                                      ) -> list[SettingChange]:
        check_changes(changes)
        now = time.time() if now is None else now
        async with self.pool.connection() as conn, conn.transaction():
            # Two admins at once (two replicas): the lock orders them, even before the row exists, so each
            # logs the value it really replaced.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('channel_settings:' || %s))", (channel_id,))
            row = await (await conn.execute(
                "SELECT prompt, model, tools, autoanswer FROM channel_settings WHERE channel_id = %s",
                (channel_id,))).fetchone()
            done, current = diff_changes(channel_id, row, changes, user_id=user_id, now=now)
            if not done:
                return []
            if all(v is None for v in current.values()):
                await conn.execute("DELETE FROM channel_settings WHERE channel_id = %s", (channel_id,))
            else:
                await conn.execute(
                    "INSERT INTO channel_settings(channel_id, team_id, prompt, model, tools, autoanswer, updated_by,"
                    " updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (channel_id) DO UPDATE SET"
                    " team_id = excluded.team_id, prompt = excluded.prompt, model = excluded.model,"
                    " tools = excluded.tools, autoanswer = excluded.autoanswer,"
                    " updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                    (channel_id, team_id, *(current[f] for f in SETTING_FIELDS), user_id, now))
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO channel_setting_changes(channel_id, team_id, field, old_value, new_value, user_id,"
                    " changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [(channel_id, team_id, c.field, c.old, c.new, user_id, now) for c in done])
        return done

    async def channel_setting_changes(self, channel_id: str, *, limit: int = 10) -> list[SettingChange]:
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(
                "SELECT channel_id, field, old_value, new_value, user_id, changed_at FROM channel_setting_changes"
                " WHERE channel_id = %s ORDER BY id DESC LIMIT %s", (channel_id, limit))).fetchall()
        return [SettingChange(*r) for r in rows]
