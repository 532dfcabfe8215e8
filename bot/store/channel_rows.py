"""Channel settings rows as records, and the check of a change's fields: the same for both backends."""
from __future__ import annotations

from typing import Mapping, Sequence

from bot.store.records import SETTING_FIELDS, ChannelSettings


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
