"""Approvals across two real `threadbot run` replicas on one PostgreSQL database: the Approve/Deny click
reaches the replica that is not waiting (as behind a load balancer), and the answer still goes on at once."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bot.slack.approvals import APPROVE_ACTION_ID, DENY_ACTION_ID
from tests.e2e.test_mcp_run import OTHER_USER, click, final, mention, question, result_text, servers_file, tool_result
from tests.e2e.test_replicas import running_replicas
from tests.fakes import slack as fs
from tests.fakes.anthropic import Reply
from tests.fakes.mcp_servers import stdio_entry

pytestmark = pytest.mark.timeout(180)


async def test_a_click_on_the_other_replica_decides(fakes, tmp_path: Path, pg_url: str) -> None:
    slack, model = fakes
    config = servers_file(tmp_path, {"mcpServers": {"notes": stdio_entry(tools=["add_note", "list_notes"])}})
    with running_replicas(fakes, tmp_path, pg_url, THREADBOT_MCP_CONFIG=config,
                          THREADBOT_APPROVAL_TIMEOUT_S="60") as (a, b):
        model.add(Reply.tool("notes_add_note", {"note": {"title": "plan", "body": "ship"}}, id="toolu_add"),
                  Reply.text("Saved it."))
        event = await mention(slack, a, "save a note")
        asked = await question(slack, event)
        await click(slack, b, asked, APPROVE_ACTION_ID, user_id=OTHER_USER)
        ephemeral = await slack.wait_for_call("chat.postEphemeral", timeout=10)
        assert (ephemeral.params["user"], ephemeral.params["text"]) == (
            OTHER_USER, f"Only <@{fs.USER_ID}> can approve this.")
        clicked = time.monotonic()
        await click(slack, b, asked, APPROVE_ACTION_ID)
        await final(slack, event, "Saved it.")
        assert time.monotonic() - clicked < 10  # not the 60 s timeout
        assert result_text(tool_result(model, "toolu_add")).startswith("saved plan")
        assert "approved" in slack.message(asked.channel, asked.ts).history[-1]

        model.add(Reply.tool("notes_add_note", {"note": {"title": "no", "body": "-"}}, id="toolu_no"),
                  Reply.text("Not saved."))
        event = await mention(slack, b, "save another")
        asked = await question(slack, event)
        await click(slack, a, asked, DENY_ACTION_ID)
        await final(slack, event, "Not saved.")
        denied = tool_result(model, "toolu_no")
        assert denied["is_error"] and "declined" in result_text(denied)
        assert json.dumps(model.requests[-1]).count("toolu_no") >= 2

