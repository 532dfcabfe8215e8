"""The console's approval question: y runs the tool, anything else or no answer in time does not."""
from __future__ import annotations

import asyncio
import io
import os

from bot.console.approval import ConsoleApproval
from bot.console.screen import Screen
from bot.conversation.approvals import ApprovalRequest

REQUEST = ApprovalRequest("toolu_1", "notes_add_note", {"note": {"title": "t", "body": "b"}}, "console")


def screen() -> tuple[Screen, io.StringIO]:
    err = io.StringIO()
    return Screen(io.StringIO(), err, ansi=False), err


async def test_yes_approves_and_the_question_shows_tool_and_arguments() -> None:
    shown, err = screen()
    assert await ConsoleApproval(shown, io.StringIO("y\n"), timeout_s=5)(REQUEST) is True
    text = err.getvalue()
    assert "threadbot wants to run notes_add_note" in text and '"title": "t"' in text and "[y/N]" in text


async def test_anything_else_is_no() -> None:
    for answer in ("n\n", "\n", "sure\n", ""):
        shown, _ = screen()
        assert await ConsoleApproval(shown, io.StringIO(answer), timeout_s=5)(REQUEST) is False


async def test_no_answer_in_time_is_no() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as never_answers:
        shown, err = screen()
        assert await ConsoleApproval(shown, never_answers, timeout_s=0.2)(REQUEST) is False
        assert "No answer within 0.2 seconds" in err.getvalue()
        os.write(write_fd, b"\n")  # let the reading thread finish
        os.close(write_fd)


async def test_a_line_typed_after_a_timeout_is_kept_for_the_prompt_and_never_answers_a_later_question() -> None:
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as stdin:
        shown, err = screen()
        approval = ConsoleApproval(shown, stdin, timeout_s=0.3)
        assert await approval(REQUEST) is False
        os.write(write_fd, b"y\n")  # typed late: meant for the prompt, not as a yes
        await asyncio.sleep(0.2)
        assert await approval(REQUEST) is False  # the next question is not answered by the earlier line
        assert err.getvalue().count("No answer within 0.3 seconds") == 2
        assert approval.next_line(lambda: "read from stdin", prompt=lambda: None) == "y"
        # The second question's read is still waiting: the next line typed is the prompt's, and the prompt shows.
        prompted: list[bool] = []
        waiting = asyncio.create_task(asyncio.to_thread(
            approval.next_line, lambda: "read from stdin", prompt=lambda: prompted.append(True)))
        await asyncio.sleep(0.2)
        assert prompted == [True] and not waiting.done()
        os.write(write_fd, b"hello\n")
        assert await waiting == "hello"
        assert approval.next_line(lambda: "read from stdin", prompt=lambda: None) == "read from stdin"
        os.close(write_fd)


def test_the_real_console_keeps_the_line_typed_after_a_timed_out_question(tmp_path) -> None:
    """Through a pseudo-terminal, as a person types: the question times out, the next line is the next question."""
    import json

    from tests.console.test_console import START_TIMEOUT, THREADBOT, Terminal, _env
    from tests.fakes.anthropic import FakeAnthropic, Reply
    from tests.fakes.mcp_servers import stdio_entry

    fake = FakeAnthropic()
    url = fake.start_in_thread()
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"notes": stdio_entry(tools=["add_note"])}}), encoding="utf-8")
    fake.add(Reply.tool("notes_add_note", {"note": {"title": "t", "body": "b"}}, id="toolu_1"), Reply.text("Not saved."))
    env = _env(tmp_path, ANTHROPIC_API_KEY="sk-ant-fake-test-key", ANTHROPIC_BASE_URL=url,
               THREADBOT_MCP_CONFIG=str(config), THREADBOT_APPROVAL_TIMEOUT_S="2")
    term = Terminal([str(THREADBOT), "console"], env=env, cwd=tmp_path)
    try:
        term.expect("you> ", timeout=START_TIMEOUT)
        term.send("save a note\r")
        term.expect("Run it? [y/N]")
        term.expect("No answer within 2 seconds: notes_add_note was not run.")
        term.expect("Not saved.")
        term.expect("you> ")
        term.send("what now\r")
        term.expect("echo: what now")
        last = fake.requests[-1]["messages"][-1]
        assert last["role"] == "user" and "what now" in json.dumps(last)
        term.expect("you> ")
        term.send("\x04")  # Ctrl-D
        assert term.wait(timeout=30) == 0
    finally:
        term.close()
        fake.stop_in_thread()
