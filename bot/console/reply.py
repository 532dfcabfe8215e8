"""One answer in the terminal: the console's side of bot.conversation.Reply."""
from __future__ import annotations

import asyncio
from typing import Sequence

from bot.console.screen import Screen
from bot.errors import Failure
from bot.messages import ToolUseBlock
from tools.registry import Registry

NO_ANSWER = "I don't have an answer to that."
INTERRUPTED = "(interrupted)"


class ConsoleReply:
    """One answer in the terminal; the same interface as SlackReply (bot.conversation.Reply)."""

    def __init__(self, screen: Screen, registry: Registry | None = None):
        self.screen = screen
        self.registry = registry if registry is not None else Registry()  # the tools' declared statuses
        self.text = ""  # everything the model wrote in this turn
        self.round_text = ""  # text since the last tool round (not yet in stored history)
        self._separate = False
        self._status: str | None = None
        self.interrupted = False

    async def start(self) -> None:
        pass

    def append(self, text: str) -> None:
        if not text:
            return
        if self._separate and self.text:
            self.screen.writer.paragraph()
        self._separate = False
        self.text += text
        self.round_text += text
        self.screen.answer(text)

    def tools_started(self, tool_uses: Sequence[ToolUseBlock]) -> None:
        self.set_status("\n".join(self.registry.status_line(u.name, u.input) for u in tool_uses))

    def set_status(self, line: str | None) -> None:
        # The agent reports a tool twice (when it starts, then with its arguments): show each line once.
        if line and line != self._status:
            for part in line.splitlines():
                self.screen.info(f"… {part}")
        self._status = line

    def separate(self) -> None:
        self._separate = True
        self.round_text = ""

    async def finish(self, *, notice: str | None = None) -> None:
        if not self.text.strip():
            self.screen.answer(NO_ANSWER)
        self.screen.writer.close()
        if notice:
            self.screen.notice(notice)

    async def fail(self, failure: Failure) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Ctrl-C: Conversations closes the turn as for a shutdown; the user asked for it, so
            # no failure message, just a mark where the answer stopped.
            self.interrupted = True
            self.screen.writer.close()
            self.screen.info(INTERRUPTED)
            return
        self.screen.failure(failure.message, ref=failure.ref)

    async def say(self, text: str) -> None:
        self.screen.message(text)
