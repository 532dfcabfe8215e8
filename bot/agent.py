"""The bounded agent loop: model call → tools (concurrently, with timeouts) → model call, at most N rounds."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Protocol

from bot.llm.types import (
    Message,
    MessageDone,
    ModelRequest,
    StreamEvent,
    TextBlock,
    TextDelta,
    ToolResultBlock,
    ToolUseBlock,
    ToolUseStarted,
)
from tools.context import ToolContext
from tools.registry import Registry

log = logging.getLogger(__name__)

ROUND_LIMIT_SENTENCE = "I stopped here because I reached my limit of steps for one question."
CUT_OFF_SENTENCE = "This answer was cut off because it reached the length limit."


class ReplySink(Protocol):
    """Where the streamed answer goes (a SlackReply, or the console)."""

    def append(self, text: str) -> None: ...
    def set_status(self, line: str | None) -> None: ...
    def separate(self) -> None: ...


@dataclass
class TurnOutcome:
    stop_reason: str
    rounds: int
    notice: str | None  # a plain sentence for the user: round limit hit, answer cut off


class Agent:
    def __init__(
        self,
        registry: Registry,
        *,
        max_rounds: int,
        tool_timeout_s: float,
        max_tokens: int,
        system_prompt: str,
        model: str,
    ):
        self.registry = registry
        self.max_rounds = max_rounds
        self.tool_timeout_s = tool_timeout_s
        self.max_tokens = max_tokens
        self.system_prompt = system_prompt
        self.model = model

    async def run(
        self,
        history: list[Message],
        *,
        ctx: ToolContext,
        reply: ReplySink,
        stream: Callable[[ModelRequest], AsyncIterator[StreamEvent]],
        persist: Callable[[list[Message]], None],
        prepare: Callable[[list[Message]], tuple[list[Message], int | None]],
    ) -> TurnOutcome:
        """Run one turn. `history` ends with the user's message; every message the turn produces is
        handed to `persist` as soon as it is complete (tool_use with its tool_result together), so
        the stored history stays a valid request even if the process dies mid-turn."""
        messages = list(history)
        specs = self.registry.specs()
        rounds = 0
        while True:
            if rounds >= self.max_rounds:
                # Checked before each call: the turn ends with what the user has seen so far.
                persist([Message("assistant", [TextBlock(ROUND_LIMIT_SENTENCE)])])
                return TurnOutcome(stop_reason="round_limit", rounds=rounds, notice=ROUND_LIMIT_SENTENCE)
            rounds += 1
            window, cache_at = prepare(messages)
            request = ModelRequest(
                model=self.model, system=self.system_prompt, messages=window, max_tokens=self.max_tokens,
                tools=specs, cache_history_at=cache_at,
            )
            done = await self._call(request, stream, reply)
            assistant = done.message
            if not assistant.content:
                # The API rejects empty assistant content; keep history valid.
                assistant = Message("assistant", [TextBlock("(no answer)")])
            tool_uses = assistant.tool_uses
            if done.stop_reason != "tool_use" or not tool_uses:
                if tool_uses:  # e.g. cut off mid tool call: answer it so history stays valid
                    results = [ToolResultBlock(u.id, "Not run: the response was cut off.", True) for u in tool_uses]
                    persist([assistant, Message("user", results),
                             Message("assistant", [TextBlock(CUT_OFF_SENTENCE)])])
                else:
                    persist([assistant])
                notice = CUT_OFF_SENTENCE if done.stop_reason == "max_tokens" else None
                return TurnOutcome(stop_reason=done.stop_reason, rounds=rounds, notice=notice)
            results = await self._run_tools(ctx, tool_uses, reply)
            tool_message = Message("user", list(results))
            persist([assistant, tool_message])
            messages += [assistant, tool_message]
            reply.separate()

    async def _call(self, request: ModelRequest, stream: Callable[[ModelRequest], AsyncIterator[StreamEvent]],
                    reply: ReplySink) -> MessageDone:
        done: MessageDone | None = None
        async for event in stream(request):
            if isinstance(event, TextDelta):
                reply.append(event.text)
            elif isinstance(event, ToolUseStarted):
                reply.set_status(self.registry.progress_line(event.name, {}))
            elif isinstance(event, MessageDone):
                done = event
        assert done is not None, "provider stream ended without MessageDone"
        return done

    async def _run_tools(self, ctx: ToolContext, tool_uses: list[ToolUseBlock], reply: ReplySink) -> list[ToolResultBlock]:
        lines = [self.registry.progress_line(u.name, u.input) for u in tool_uses]
        reply.set_status("\n".join(lines))
        return list(await asyncio.gather(*(self._run_one(ctx, u) for u in tool_uses)))

    async def _run_one(self, ctx: ToolContext, tool_use: ToolUseBlock) -> ToolResultBlock:
        try:
            return await asyncio.wait_for(self.registry.run(ctx, tool_use), timeout=self.tool_timeout_s)
        except asyncio.TimeoutError:
            log.warning("tool %s timed out after %ss", tool_use.name, self.tool_timeout_s)
            return ToolResultBlock(
                tool_use.id, f"The tool {tool_use.name} timed out after {self.tool_timeout_s:g} seconds.", True
            )
        except Exception as exc:  # registry.run already turns tool errors into results; this is a backstop
            log.exception("tool %s failed", tool_use.name)
            return ToolResultBlock(tool_use.id, f"The tool {tool_use.name} failed: {type(exc).__name__}.", True)
