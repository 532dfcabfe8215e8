"""End to end: the real `threadbot run` with an MCP servers file, the Slack fake and the model fake.

One bot process answers several threads: a read-only MCP call, an approved one (after another user's
click is refused), a denied one, one nobody answers, and a server that crashes mid-call and comes back.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.slack.approvals import APPROVE_ACTION_ID, BLOCK_ID, DENY_ACTION_ID
from tests.botproc import BotProcess
from tests.fakes import slack as fs
from tests.fakes.anthropic import Reply
from tests.fakes.mcp_servers import stdio_entry
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.timeout(180)
OTHER_USER = "U0OTHER0001"
ALLOWED = ["echo", "add_note", "list_notes", "crash", "pid"]


def servers_file(tmp_path: Path, data: object) -> str:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def start_bot(fakes, tmp_path: Path, **env: str) -> BotProcess:
    slack, model = fakes
    bot = BotProcess(slack_api_url=slack.api_url, anthropic_url=model.base_url, db_path=tmp_path / "bot.db",
                     socket_mode=False, log_path=tmp_path / "bot.log", extra_env=env)
    bot.start()
    return bot


async def mention(slack: FakeSlack, bot: BotProcess, text: str) -> dict:
    event = fs.app_mention(text)
    result = await slack.deliver_http(bot.events_url, fs.event_callback(event))
    assert result.status == 200 and result.elapsed < 3.0
    return event


async def final(slack: FakeSlack, event: dict, text: str) -> fs.FakeMessage:
    return await slack.wait_for(
        lambda: next((m for m in slack.messages_in_thread(fs.CHANNEL_ID, event["ts"])
                      if m.user == fs.BOT_USER_ID and m.text == text), None), timeout=30, what=f"reply {text!r}")


async def question(slack: FakeSlack, event: dict) -> fs.FakeMessage:
    def find():
        for m in slack.messages_in_thread(fs.CHANNEL_ID, event["ts"]):
            if any(b.get("block_id") == BLOCK_ID for b in m.blocks or []):
                return m
        return None
    return await slack.wait_for(find, timeout=30, what="approval question")


def approval_id(message: fs.FakeMessage) -> str:
    (actions,) = [b for b in message.blocks or [] if b.get("block_id") == BLOCK_ID]
    values = {e["action_id"]: e["value"] for e in actions["elements"]}
    assert set(values) == {APPROVE_ACTION_ID, DENY_ACTION_ID} and len(set(values.values())) == 1
    return values[APPROVE_ACTION_ID]


async def click(slack: FakeSlack, bot: BotProcess, message: fs.FakeMessage, action_id: str,
                user_id: str = fs.USER_ID) -> None:
    payload = fs.block_actions(action_id, approval_id(message), user_id=user_id, message_ts=message.ts,
                               thread_ts=message.thread_ts, block_id=BLOCK_ID)
    result = await slack.deliver_http(bot.events_url, payload)
    assert result.status == 200 and result.elapsed < 3.0


def tool_result(model, tool_use_id: str) -> dict:
    for request in reversed(model.requests):
        for message in request["messages"]:
            for block in message["content"] if isinstance(message["content"], list) else []:
                if block.get("type") == "tool_result" and block.get("tool_use_id") == tool_use_id:
                    return block
    raise AssertionError(f"no tool_result for {tool_use_id}")


def result_text(block: dict) -> str:
    content = block["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


async def test_mcp_tools_with_approval_through_the_real_process(fakes, tmp_path: Path) -> None:
    slack, model = fakes
    config = servers_file(tmp_path, {"mcpServers": {"notes": stdio_entry(tools=ALLOWED)}})
    bot = start_bot(fakes, tmp_path, THREADBOT_MCP_CONFIG=config, THREADBOT_APPROVAL_TIMEOUT_S="3")
    try:
        # A read-only tool runs without a question; the allowlist decides what the model is offered.
        model.add(Reply.tool("notes_echo", {"text": "ping"}, id="toolu_echo"), Reply.text("Echoed."))
        event = await mention(slack, bot, "echo ping")
        await final(slack, event, "Echoed.")
        offered = {t["name"] for t in model.requests[0]["tools"]}
        assert {f"notes_{t}" for t in ALLOWED} <= offered and "notes_big" not in offered
        assert result_text(tool_result(model, "toolu_echo")).startswith("ping")
        assert not any(b.get("block_id") == BLOCK_ID for m in slack.messages_in_thread(fs.CHANNEL_ID, event["ts"])
                       for b in m.blocks or [])

        # A tool that acts waits; another user's click is refused with an ephemeral; the asker approves.
        note = {"note": {"title": "launch", "body": "Friday " + "x" * 400}}
        model.add(Reply.tool("notes_add_note", note, id="toolu_add"), Reply.text("Saved it."))
        event = await mention(slack, bot, "save a note")
        asked = await question(slack, event)
        assert "notes_add_note" in asked.history[0] or "notes_add_note" in json.dumps(asked.blocks)
        shown = json.dumps(asked.blocks)
        assert f"<@{fs.USER_ID}>" in shown and "launch" in shown and "x" * 400 not in shown  # long value shortened
        await click(slack, bot, asked, APPROVE_ACTION_ID, user_id=OTHER_USER)
        ephemeral = await slack.wait_for_call("chat.postEphemeral", timeout=10)
        assert ephemeral.params["user"] == OTHER_USER
        assert ephemeral.params["text"] == f"Only <@{fs.USER_ID}> can approve this."
        await click(slack, bot, asked, APPROVE_ACTION_ID)
        await final(slack, event, "Saved it.")
        assert result_text(tool_result(model, "toolu_add")).startswith("saved launch")
        assert "approved" in slack.message(fs.CHANNEL_ID, asked.ts).history[-1]

        # Denied: the tool does not run, the model hears so and goes on.
        model.add(Reply.tool("notes_add_note", {"note": {"title": "nope", "body": "-"}}, id="toolu_deny"),
                  Reply.tool("notes_list_notes", {}, id="toolu_list"), Reply.text("Not saved."))
        event = await mention(slack, bot, "save another")
        asked = await question(slack, event)
        await click(slack, bot, asked, DENY_ACTION_ID)
        await final(slack, event, "Not saved.")
        denied = tool_result(model, "toolu_deny")
        assert denied["is_error"] and "declined" in result_text(denied)
        assert "nope" not in result_text(tool_result(model, "toolu_list"))  # it really did not run
        assert "declined" in slack.message(fs.CHANNEL_ID, asked.ts).history[-1]

        # Nobody answers within THREADBOT_APPROVAL_TIMEOUT_S: a Deny.
        model.add(Reply.tool("notes_add_note", {"note": {"title": "late", "body": "-"}}, id="toolu_late"),
                  Reply.text("Timed out."))
        event = await mention(slack, bot, "save a late one")
        asked = await question(slack, event)
        await final(slack, event, "Timed out.")
        assert "declined" in result_text(tool_result(model, "toolu_late"))
        assert "No answer within 3 seconds" in slack.message(fs.CHANNEL_ID, asked.ts).history[-1]

        # The server dies mid-call: an error result, then it is restarted and the next call works.
        model.add(Reply.tool("notes_crash", {}, id="toolu_crash"), Reply.text("It crashed."))
        event = await mention(slack, bot, "crash it")
        await click(slack, bot, await question(slack, event), APPROVE_ACTION_ID)
        await final(slack, event, "It crashed.")
        crashed = tool_result(model, "toolu_crash")
        assert crashed["is_error"] and "disconnected" in result_text(crashed)
        model.add(Reply.tool("notes_echo", {"text": "back"}, id="toolu_back"), Reply.text("Back."))
        event = await mention(slack, bot, "are you back?")
        await final(slack, event, "Back.")
        back = tool_result(model, "toolu_back")
        assert not back.get("is_error") and result_text(back).startswith("back")
    finally:
        assert bot.stop() == 0, bot.log()


async def test_an_mcp_image_reaches_the_model_as_an_image_block_and_stays_in_the_thread(fakes, tmp_path: Path
                                                                                        ) -> None:
    slack, model = fakes
    config = servers_file(tmp_path, {"mcpServers": {"notes": stdio_entry(tools=["chart"])}})
    bot = start_bot(fakes, tmp_path, THREADBOT_MCP_CONFIG=config)
    try:
        model.add(Reply.tool("notes_chart", {}, id="toolu_chart"), Reply.text("A gradient."))
        event = await mention(slack, bot, "draw the chart")
        await final(slack, event, "A gradient.")
        block = tool_result(model, "toolu_chart")
        [text, image] = block["content"]
        assert text["text"].startswith("chart 2400x600") and image["type"] == "image"
        assert image["source"]["media_type"] == "image/png" and model.calls[-1].media.images == 1
        # The next question of the thread sends the image again: history keeps its address, the store its bytes.
        model.add(Reply.text("Still a gradient."))
        follow = fs.app_mention("and now?", thread_ts=event["ts"])
        assert (await slack.deliver_http(bot.events_url, fs.event_callback(follow))).status == 200
        await final(slack, event, "Still a gradient.")
        again = [b for m in model.requests[-1]["messages"] for b in m["content"] if isinstance(b, dict)
                 and b.get("type") == "tool_result"]
        assert again[0]["content"][1]["source"]["data"] == image["source"]["data"]
        assert model.calls[-1].media.images == 1
    finally:
        assert bot.stop() == 0, bot.log()


def test_a_malformed_servers_file_stops_start_up_with_one_line(fakes, tmp_path: Path) -> None:
    config = servers_file(tmp_path, {"mcpServers": {"notes": {"command": "x", "approval": "maybe"}}})
    with pytest.raises(RuntimeError) as caught:
        start_bot(fakes, tmp_path, THREADBOT_MCP_CONFIG=config)
    lines = [line for line in str(caught.value).splitlines() if "THREADBOT_MCP_CONFIG" in line]
    assert lines == [f"threadbot: THREADBOT_MCP_CONFIG ({config}): mcpServers.notes.approval must be "
                     "\"writes\", \"always\" or \"never\", not 'maybe'. Fix the file or unset THREADBOT_MCP_CONFIG."]
