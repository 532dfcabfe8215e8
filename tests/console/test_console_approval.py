"""The console's approval question: y runs the tool, anything else or no answer in time does not."""
from __future__ import annotations

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
