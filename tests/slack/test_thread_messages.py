"""Which Slack messages are recorded as thread messages, and which replies are follow-ups for the bot."""
from __future__ import annotations

from bot.slack.thread_messages import is_followup, thread_message
from tests.fakes import slack as fs

BOT = fs.BOT_USER_ID


def reply(text: str, **kw) -> dict:
    return fs.message_event(text, thread_ts="1700000000.000100", **kw)


def test_said_messages_are_recorded_with_their_files_and_the_rest_is_not() -> None:
    files = [{"id": "F1", "name": "trace.log"}, {"id": "F2", "title": "Screenshot"}, {"id": "F3"}]
    shared = thread_message(reply("", files=files))
    assert shared is not None and shared.file_names == ("trace.log", "Screenshot", "F3") and shared.text == ""
    app = thread_message({**reply(""), "user": None, "bot_id": "B0CI", "subtype": "bot_message",
                          "attachments": [{"fallback": "build #12 failed"}]})
    assert app is not None and app.text == "build #12 failed" and app.bot_id == "B0CI" and app.user_id == ""
    for subtype in ("channel_join", "tombstone", "message_changed", "message_deleted", "channel_topic"):
        assert thread_message(reply("x", subtype=subtype)) is None
    assert thread_message({"type": "message", "text": "no ts"}) is None


def test_followups() -> None:
    assert is_followup(reply("and what about staging?", user="U0BOB"), bot_user_id=BOT)
    assert is_followup(reply(f"<@{BOT}> and staging?"), bot_user_id=BOT)
    assert is_followup(reply(f"<@U0BOB> <@{BOT}> both of you"), bot_user_id=BOT)
    assert is_followup(reply("also shared", subtype="thread_broadcast"), bot_user_id=BOT)
    assert is_followup(reply("log attached", files=[{"id": "F1", "name": "a.log"}]), bot_user_id=BOT)
    assert not is_followup(reply("<@U0BOB> can you check?"), bot_user_id=BOT)  # addressed to someone else
    assert not is_followup(reply("<@U0BOB|bob> can you check?"), bot_user_id=BOT)
    assert not is_followup({**reply("from a bot"), "bot_id": "B0OTHER"}, bot_user_id=BOT)
    assert not is_followup(reply("edited", subtype="message_changed"), bot_user_id=BOT)
    assert not is_followup(reply("joined", subtype="channel_join"), bot_user_id=BOT)
    assert not is_followup(fs.message_event("top level"), bot_user_id=BOT)
    assert not is_followup(fs.dm_message("a DM", thread_ts="1700000000.000100"), bot_user_id=BOT)
    parent = fs.message_event("parent", ts="1700000000.000100", thread_ts="1700000000.000100")
    assert not is_followup(parent, bot_user_id=BOT)
    assert not is_followup(reply("mine", user=BOT), bot_user_id=BOT)
