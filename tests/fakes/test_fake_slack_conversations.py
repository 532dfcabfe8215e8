"""The Slack fake serves threads, channel history, members and users as Slack does, errors included."""
from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import BOT_USER_ID, CHANNEL_ID, USER_ID, FakeSlack

BOB, CAROL = "U0BOB", "U0CAROL"


@pytest.fixture(autouse=True)
def _people(slack: FakeSlack) -> None:
    slack.add_user(BOB, name="bob", real_name="Bob Builder")
    slack.add_user(CAROL, name="", real_name="Carol Real")
    slack.channels[CHANNEL_ID].members += [BOB, CAROL]


async def _error(call) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


# The SDK's async iterator reuses one response object, hence the dict(page.data) copies below.


async def test_replies_page_with_cursor_and_keep_the_parent_on_top(slack: FakeSlack, client: AsyncWebClient) -> None:
    parent = slack.add_thread(CHANNEL_ID, "deploy failed", [(BOB if i % 2 else CAROL, f"r{i}") for i in range(25)])
    pages = [dict(page.data) async for page in await client.conversations_replies(channel=CHANNEL_ID, ts=parent, limit=10)]
    assert len(pages) == 3
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert pages[-1]["response_metadata"]["next_cursor"] == ""
    for page in pages:  # the parent heads every page, as Slack returns it
        assert page["messages"][0]["ts"] == parent and page["messages"][0]["reply_count"] == 25
    replies = [m["text"] for p in pages for m in p["messages"][1:]]
    assert replies == [f"r{i}" for i in range(25)]
    # a reply's ts finds the same thread
    one_reply = pages[0]["messages"][3]["ts"]
    again = await client.conversations_replies(channel=CHANNEL_ID, ts=one_reply, limit=1000)
    assert len(again["messages"]) == 26 and not again["has_more"]


async def test_replies_oldest_latest_inclusive(slack: FakeSlack, client: AsyncWebClient) -> None:
    parent = slack.add_thread(CHANNEL_ID, "p", [(BOB, f"r{i}") for i in range(6)])
    ts = [m.ts for m in slack.messages_in_thread(CHANNEL_ID, parent)[1:]]
    after = await client.conversations_replies(channel=CHANNEL_ID, ts=parent, oldest=ts[2])
    assert [m["text"] for m in after["messages"]] == ["p", "r3", "r4", "r5"]
    incl = await client.conversations_replies(channel=CHANNEL_ID, ts=parent, oldest=ts[2], latest=ts[4],
                                              inclusive=True)
    assert [m["text"] for m in incl["messages"]] == ["p", "r2", "r3", "r4"]
    bad = await _error(client.conversations_replies(channel=CHANNEL_ID, ts=parent, cursor="not-a-cursor"))
    assert bad.response["error"] == "invalid_cursor"


async def test_history_is_newest_first_top_level_only(slack: FakeSlack, client: AsyncWebClient) -> None:
    first = slack.add_message(CHANNEL_ID, "m0")
    slack.add_message(CHANNEL_ID, "in thread", user=BOB, thread_ts=first)
    slack.add_message(CHANNEL_ID, "also in channel", user=BOB, thread_ts=first, subtype="thread_broadcast")
    later = [slack.add_message(CHANNEL_ID, f"m{i}") for i in range(1, 5)]
    pages = [dict(page.data) async for page in await client.conversations_history(channel=CHANNEL_ID, limit=2)]
    texts = [m["text"] for p in pages for m in p["messages"]]
    assert texts == ["m4", "m3", "m2", "m1", "also in channel", "m0"]
    parent = next(m for p in pages for m in p["messages"] if m["text"] == "m0")
    assert parent["reply_count"] == 2 and parent["latest_reply"]
    window = await client.conversations_history(channel=CHANNEL_ID, oldest=first, latest=later[2])
    assert [m["text"] for m in window["messages"]] == ["m2", "m1", "also in channel"]


async def test_read_errors_as_slack_answers_them(slack: FakeSlack, client: AsyncWebClient) -> None:
    parent = slack.add_thread(CHANNEL_ID, "p", [(BOB, "r")])
    slack.fail_next("conversations.replies", retry_after=30)
    limited = await _error(client.conversations_replies(channel=CHANNEL_ID, ts=parent))
    assert limited.response.status_code == 429 and limited.response.headers["Retry-After"] == "30"
    slack.fail_next("conversations.replies", "internal_error", status=500)
    broken = await _error(client.conversations_replies(channel=CHANNEL_ID, ts=parent))
    assert broken.response.status_code == 500

    slack.add_channel("C0OUTSIDE", name="outside", members=[USER_ID], bot_is_member=False)
    slack.add_message("C0OUTSIDE", "not for the bot")
    outside = await _error(client.conversations_history(channel="C0OUTSIDE"))
    assert outside.response["error"] == "not_in_channel"
    slack.add_channel("C0SECRET", name="secret", is_private=True, members=[USER_ID], bot_is_member=False)
    secret = await _error(client.conversations_history(channel="C0SECRET"))
    assert secret.response["error"] == "channel_not_found"
    unknown = await _error(client.conversations_replies(channel="C0NOPE", ts=parent))
    assert unknown.response["error"] == "channel_not_found"

    slack.add_channel("G0PRIV", name="priv", is_private=True, members=[USER_ID])
    slack.scopes.discard("groups:history")
    scope = await _error(client.conversations_history(channel="G0PRIV"))
    assert scope.response["error"] == "missing_scope" and scope.response["needed"] == "groups:history"
    assert (await client.conversations_history(channel=CHANNEL_ID))["ok"]  # public still readable


async def test_deleted_edited_and_file_messages(slack: FakeSlack, client: AsyncWebClient) -> None:
    parent = slack.add_thread(CHANNEL_ID, "parent", [(BOB, "keep"), (BOB, "drop")])
    drop = slack.messages_in_thread(CHANNEL_ID, parent)[2].ts
    deleted = slack.delete_message(CHANNEL_ID, drop)
    assert deleted["subtype"] == "message_deleted" and deleted["deleted_ts"] == drop
    slack.delete_message(CHANNEL_ID, parent)
    replies = await client.conversations_replies(channel=CHANNEL_ID, ts=parent)
    assert [(m.get("subtype"), m["text"]) for m in replies["messages"]] == [
        ("tombstone", "This message was deleted."), (None, "keep")]
    keep = replies["messages"][1]["ts"]
    changed = slack.edit_message(CHANNEL_ID, keep, "kept, edited")
    assert changed["message"]["text"] == "kept, edited" and changed["previous_message"]["text"] == "keep"
    files = [{"id": "F1", "name": "trace.log", "title": "trace.log", "mimetype": "text/plain"}]
    slack.add_message(CHANNEL_ID, "", user=CAROL, thread_ts=parent, files=files)
    replies = await client.conversations_replies(channel=CHANNEL_ID, ts=parent)
    assert replies["messages"][1]["edited"]["ts"]
    assert replies["messages"][2]["subtype"] == "file_share" and replies["messages"][2]["files"][0]["name"] == "trace.log"
    lonely = slack.add_message(CHANNEL_ID, "gone")
    slack.delete_message(CHANNEL_ID, lonely)
    gone = await _error(client.conversations_replies(channel=CHANNEL_ID, ts=lonely))
    assert gone.response["error"] == "thread_not_found"


async def test_members_info_and_users(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.add_channel("C0PRIV", name="priv", is_private=True, members=[USER_ID, BOB, CAROL])
    pages = [dict(page.data) async for page in await client.conversations_members(channel="C0PRIV", limit=2)]
    assert len(pages) == 2
    assert sorted(u for p in pages for u in p["members"]) == sorted([USER_ID, BOB, CAROL, BOT_USER_ID])
    info = (await client.conversations_info(channel="C0PRIV"))["channel"]
    assert info["is_private"] and info["is_member"] and info["name"] == "priv"
    public = (await client.conversations_info(channel=CHANNEL_ID))["channel"]
    assert public["is_channel"] and not public["is_private"]

    bob = (await client.users_info(user=BOB))["user"]
    assert bob["profile"]["display_name"] == "bob"
    carol = (await client.users_info(user=CAROL))["user"]
    assert carol["profile"]["display_name"] == "" and carol["real_name"] == "Carol Real"
    slack.scopes.discard("users:read")
    denied = await _error(client.users_info(user=BOB))
    assert denied.response["error"] == "missing_scope" and denied.response["needed"] == "users:read"


async def test_user_message_records_and_returns_the_event(slack: FakeSlack, client: AsyncWebClient) -> None:
    parent = slack.add_message(CHANNEL_ID, "p")
    event = slack.user_message(CHANNEL_ID, "and staging?", user=BOB, thread_ts=parent)
    assert event["type"] == "message" and event["thread_ts"] == parent and event["user"] == BOB
    mention = slack.user_message(CHANNEL_ID, "what now?", thread_ts=parent, mention=True)
    assert mention["type"] == "app_mention" and mention["text"].startswith(f"<@{BOT_USER_ID}>")
    replies = await client.conversations_replies(channel=CHANNEL_ID, ts=parent)
    assert [m["ts"] for m in replies["messages"][1:]] == [event["ts"], mention["ts"]]
