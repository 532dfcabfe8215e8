"""Channel settings rows as records, and what a change changes: the same for both backends (they keep the SQL)."""
from __future__ import annotations

from typing import Mapping, Sequence

from bot.store.records import SETTING_FIELDS, ChannelSettings, SettingChange


def settings_from_row(row: Sequence[object]) -> ChannelSettings:
    channel_id, prompt, model, tools, autoanswer, updated_by, updated_at = row
    return ChannelSettings(
        channel_id=str(channel_id), prompt=prompt, model=model,  # type: ignore[arg-type]
        tools=tuple(name for name in str(tools).split(",") if name) if tools is not None else None,
        autoanswer=autoanswer == "on", updated_by=updated_by,  # type: ignore[arg-type]
        updated_at=float(updated_at) if updated_at is not None else None,  # type: ignore[arg-type]
    )


def check_changes(changes: Mapping[str, str | None]) -> None:
    unknown = set(changes) - set(SETTING_FIELDS)
    if unknown:
        raise ValueError(f"unknown channel setting(s): {', '.join(sorted(unknown))}")


def diff_changes(channel_id: str, row: Sequence[str | None] | None, changes: Mapping[str, str | None], *,
                 user_id: str, now: float) -> tuple[list[SettingChange], dict[str, str | None]]:
    """The changes that really change something (for the log), and the settings after them.

    `row` is the stored (prompt, model, tools, autoanswer), None when the channel has none yet.
    """
    current: dict[str, str | None] = dict(zip(SETTING_FIELDS, row or (None,) * len(SETTING_FIELDS)))
    done = [SettingChange(channel_id, field, current[field], new, user_id, now)  # type: ignore[arg-type]
            for field, new in changes.items() if current[field] != new]
    current.update(changes)
    return done, current
