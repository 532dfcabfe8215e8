"""Channel settings in the store, on both backends: set, back to default, one change row per real change,
newest first, and two admins at once (two replicas) each logging the value they replaced."""
from __future__ import annotations

import asyncio

import pytest

from bot.store import ChannelSettings, SettingChange
from tests.store.test_backends import second


@pytest.fixture
async def store(any_store):
    return any_store


async def test_changes_are_stored_logged_with_old_and_new_and_listed_newest_first(store):
    assert await store.channel_settings("C1") is None
    done = await store.change_channel_settings("C1", team_id="T1", user_id="UA",
                                               changes={"prompt": "Be brief.", "tools": "get_weather,files"},
                                               now=100.0)
    assert done == [SettingChange("C1", "prompt", None, "Be brief.", "UA", 100.0),
                    SettingChange("C1", "tools", None, "get_weather,files", "UA", 100.0)]
    await store.change_channel_settings("C1", team_id="T1", user_id="UB",
                                        changes={"prompt": "Be thorough.", "autoanswer": "on"}, now=200.0)
    assert await store.channel_settings("C1") == ChannelSettings(
        "C1", prompt="Be thorough.", model=None, tools=("get_weather", "files"), autoanswer=True,
        updated_by="UB", updated_at=200.0)
    assert [(c.field, c.old, c.new, c.user_id) for c in await store.channel_setting_changes("C1")] == [
        ("autoanswer", None, "on", "UB"), ("prompt", "Be brief.", "Be thorough.", "UB"),
        ("tools", None, "get_weather,files", "UA"), ("prompt", None, "Be brief.", "UA")]
    assert len(await store.channel_setting_changes("C1", limit=2)) == 2
    assert await store.channel_settings("C2") is None and await store.channel_setting_changes("C2") == []


async def test_an_unchanged_value_logs_nothing_and_all_defaults_remove_the_row(store):
    await store.change_channel_settings("C1", team_id="T1", user_id="UA", changes={"model": "gpt-4o"})
    assert await store.change_channel_settings("C1", team_id="T1", user_id="UA", changes={"model": "gpt-4o"}) == []
    await store.change_channel_settings("C2", team_id="T1", user_id="UA", changes={"tools": ""})
    assert (await store.channel_settings("C2")).tools == ()  # no tools at all, not the default
    assert [s.channel_id for s in await store.all_channel_settings()] == ["C1", "C2"]
    reset = await store.change_channel_settings("C1", team_id="T1", user_id="UB",
                                                changes={"prompt": None, "model": None, "tools": None,
                                                         "autoanswer": None})
    assert [(c.field, c.old, c.new) for c in reset] == [("model", "gpt-4o", None)]
    assert await store.channel_settings("C1") is None
    assert [s.channel_id for s in await store.all_channel_settings()] == ["C2"]


async def test_an_unknown_field_is_refused_and_writes_nothing(store):
    with pytest.raises(ValueError, match="unknown channel setting"):
        await store.change_channel_settings("C1", team_id="T1", user_id="UA", changes={"persona": "x"})
    assert await store.channel_setting_changes("C1") == []


async def test_two_replicas_changing_one_channel_at_once_log_a_consistent_chain(store):
    other = await second(store)
    try:
        await asyncio.gather(*(s.change_channel_settings("C1", team_id="T1", user_id=f"U{i}",
                                                         changes={"model": f"model-{i}"})
                               for i, s in enumerate([store, other] * 4)))
        chain = list(reversed(await other.channel_setting_changes("C1", limit=100)))
        assert len(chain) == 8 and chain[0].old is None
        # Each change replaced exactly the value the one before it set: none was lost in a race.
        assert all(later.old == earlier.new for earlier, later in zip(chain, chain[1:]))
        assert (await store.channel_settings("C1")).model == chain[-1].new
    finally:
        await other.close()
