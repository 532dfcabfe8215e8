"""The bounded agent loop: model call → tools (concurrently, with timeouts) → model call, at most N rounds."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Protocol, Sequence

from bot.conversation.history import INTERRUPTED
from bot.conversation.transcript import Transcript
from bot.errors import ModelUnavailable, ToolRoundLimit
from bot.llm.tokens import count_fixed_tokens
from bot.messages import (
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
from bot.conversation.approvals import ApprovalRequest, Approve, cannot_ask, declined
from tools.context import ToolContext
from tools.registry import Registry

log = logging.getLogger(__name__)

# One wording for the limit: the named error's docstring is the sentence the user reads.
ROUND_LIMIT_SENTENCE = ToolRoundLimit().user_message()
CUT_OFF_SENTENCE = "This answer was cut off because it reached the length limit."
NOT_RUN_CUT_OFF = "Not run: the response was cut off before this call was complete."
NO_ANSWER = "(no answer)"
NOT_OFFERED = "The tool {name} is not available in this channel."


class ReplySink(Protocol):
    """Where the streamed answer goes (a SlackReply, or the console)."""

    def append(self, text: str) -> None: ...
    def tools_started(self, tool_uses: Sequence[ToolUseBlock]) -> None:
        """The model called these tools (input {} while it is still streaming); each surface shows the
        status the tool declares (tools.registry) until more text arrives."""
    def separate(self) -> None: ...


@dataclass
class TurnOutcome:
    stop_reason: str  # the last call's stop_reason, or "round_limit"
    rounds: int  # model calls made in this turn
    notice: str | None  # a plain sentence for the user: round limit hit, answer cut off


@dataclass(frozen=True)
class AgentProfile:
    """What one turn offers the model: the model id to send, the system prompt, the tools (None: all).
    A channel with its own settings (/threadbot) gets its own; the same profile gives the same prefix."""

    model: str
    system_prompt: str
    tools: tuple[str, ...] | None = None


class Agent:
    """Runs turns: each round is one model call, then the tools it asked for; `max_rounds` model calls at most."""

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
        if max_rounds < 1:
            raise ValueError("max_rounds must be at least 1")
        self.registry = registry
        self.max_rounds = max_rounds
        self.tool_timeout_s = tool_timeout_s
        self.max_tokens = max_tokens
        self.system_prompt = system_prompt
        self.model = model

    @property
    def default_profile(self) -> AgentProfile:
        return AgentProfile(model=self.model, system_prompt=self.system_prompt)

    def fixed_tokens_for(self, profile: AgentProfile) -> int:
        """What the system prompt and the tool definitions add to a request made now (an MCP server may
        change its tools at any time, so the tools are looked up each time; the count is cached by text)."""
        return count_fixed_tokens(profile.system_prompt, self.registry.specs(profile.tools))

    async def run(
        self,
        transcript: Transcript,
        *,
        ctx: ToolContext,
        reply: ReplySink,
        stream: Callable[[ModelRequest], AsyncIterator[StreamEvent]],
        approve: Approve | None = None,
        profile: AgentProfile | None = None,
        rounds_done: int = 0,
    ) -> TurnOutcome:
        """Run one turn. The transcript ends with the user's message; every message the turn produces is
        recorded as soon as it is complete (tool_use with its tool_result together), so the stored
        history stays a valid request even if the turn dies half-way.

        Model errors (bot.errors.ModelError) propagate: the caller closes the turn. Tool failures
        never do; they go back to the model as error results. A tool that acts runs only after
        `approve` (the surface asking the user) said yes; without `approve` it does not run. `profile`
        (default: the agent's own) chooses the model, system prompt and tools on offer; a call to a tool
        not on offer is answered with an error result, never run. `rounds_done`: model calls this turn
        already made (going on after a retry), counted against the limit."""
        profile = profile or self.default_profile
        persist = transcript.record
        rounds = rounds_done
        while True:
            if rounds >= self.max_rounds:
                # Checked before each call. The text streamed so far stays as the answer; history ends
                # on an assistant message so the next question is a valid request.
                log.info("turn stopped at the limit of %d model calls", self.max_rounds)
                await persist([Message("assistant", [TextBlock(ROUND_LIMIT_SENTENCE)])])
                return TurnOutcome(stop_reason="round_limit", rounds=rounds, notice=ROUND_LIMIT_SENTENCE)
            rounds += 1
            # The tools as they are now: an MCP server that announced a change offers its new list from the
            # next call on, and the estimate counts exactly the tools this request sends.
            specs = self.registry.specs(profile.tools)
            offered = frozenset(spec.name for spec in specs)
            fixed_tokens = count_fixed_tokens(profile.system_prompt, specs)
            window = transcript.window(model=profile.model, max_tokens=self.max_tokens, fixed_tokens=fixed_tokens)
            request = ModelRequest(
                model=profile.model, system=profile.system_prompt, messages=window.messages,
                max_tokens=self.max_tokens,
                tools=specs, cache_history_at=window.cache_history_at,
                estimated_input_tokens=window.estimated_input_tokens,
            )
            done = await self._call(request, stream, reply)
            assistant = done.message
            if not assistant.content:
                # The API rejects empty assistant content; keep history valid.
                assistant = Message("assistant", [TextBlock(NO_ANSWER)])
            tool_uses = assistant.tool_uses
            if done.stop_reason == "max_tokens":
                # A tool_use cut off mid-input cannot be trusted; answer it so history stays valid.
                tail = [Message("user", [ToolResultBlock(u.id, NOT_RUN_CUT_OFF, True) for u in tool_uses]),
                        Message("assistant", [TextBlock(CUT_OFF_SENTENCE)])] if tool_uses else []
                await persist([assistant, *tail])
                return TurnOutcome(stop_reason=done.stop_reason, rounds=rounds, notice=CUT_OFF_SENTENCE)
            if not tool_uses:
                await persist([assistant])
                return TurnOutcome(stop_reason=done.stop_reason, rounds=rounds, notice=None)
            # Tool calls are answered whatever the stop_reason says: an unanswered tool_use would make
            # the stored history an invalid request.
            try:
                results = await self._run_tools(ctx, tool_uses, reply, approve, offered)
            except BaseException:
                # Cancelled mid-tools (shutdown): keep the calls with an "interrupted" answer, so the
                # thread keeps its tool context and stays valid; the caller closes the turn.
                await persist([assistant, Message("user", [ToolResultBlock(u.id, INTERRUPTED, True) for u in tool_uses])])
                raise
            await persist([assistant, Message("user", results)])
            reply.separate()

    async def _call(self, request: ModelRequest, stream: Callable[[ModelRequest], AsyncIterator[StreamEvent]],
                    reply: ReplySink) -> MessageDone:
        done: MessageDone | None = None
        async for event in stream(request):
            if isinstance(event, TextDelta):
                reply.append(event.text)
            elif isinstance(event, ToolUseStarted):
                # The arguments are still streaming; a generic line now, the specific one once they're known.
                reply.tools_started([ToolUseBlock(event.id, event.name, {})])
            elif isinstance(event, MessageDone):
                done = event
        if done is None:
            raise ModelUnavailable("the model stream ended without a final message")
        return done

    async def _run_tools(self, ctx: ToolContext, tool_uses: list[ToolUseBlock], reply: ReplySink,
                         approve: Approve | None, offered: frozenset[str]) -> list[ToolResultBlock]:
        reply.tools_started(tool_uses)
        # gather keeps the order of tool_uses, which is the order the results must go back in.
        return list(await asyncio.gather(*(self._run_one(ctx, u, approve, offered) for u in tool_uses)))

    async def _run_one(self, ctx: ToolContext, tool_use: ToolUseBlock, approve: Approve | None,
                       offered: frozenset[str]) -> ToolResultBlock:
        if tool_use.name not in offered and tool_use.name in self.registry:
            # Offered elsewhere (or earlier in the thread), not here: the channel's admins chose its tools.
            log.info("tool %s (%s) is not offered here: not run", tool_use.name, tool_use.id)
            return ToolResultBlock(tool_use.id, NOT_OFFERED.format(name=tool_use.name), True)
        if self.registry.acts(tool_use.name):
            # Asked before the tool's timeout starts: a person may take minutes to decide.
            refused = await self._ask(ctx, tool_use, approve)
            if refused is not None:
                return refused
        started = time.monotonic()
        try:
            result = await asyncio.wait_for(self.registry.run(ctx, tool_use), timeout=self.tool_timeout_s)
        except asyncio.TimeoutError:
            log.warning("tool %s (%s) timed out after %ss", tool_use.name, tool_use.id, self.tool_timeout_s)
            return ToolResultBlock(
                tool_use.id, f"The tool {tool_use.name} timed out after {self.tool_timeout_s:g} seconds.", True
            )
        except Exception as exc:  # registry.run already turns tool errors into results; this is a backstop
            log.exception("tool %s (%s) failed", tool_use.name, tool_use.id)
            return ToolResultBlock(tool_use.id, f"The tool {tool_use.name} failed: {type(exc).__name__}.", True)
        log.info("tool %s (%s) %s in %.0f ms", tool_use.name, tool_use.id,
                 "failed" if result.is_error else "ran", (time.monotonic() - started) * 1000)
        return result

    async def _ask(self, ctx: ToolContext, tool_use: ToolUseBlock, approve: Approve | None) -> ToolResultBlock | None:
        """None when the user approved; otherwise the result the model reads instead of the tool's."""
        if approve is None:
            log.info("tool %s (%s) acts and nobody can approve it here: not run", tool_use.name, tool_use.id)
            return ToolResultBlock(tool_use.id, cannot_ask(tool_use.name), True)
        request = ApprovalRequest(tool_use.id, tool_use.name, dict(tool_use.input or {}), ctx.user_id)
        try:
            approved = await approve(request)
        except Exception:  # noqa: BLE001 - a broken question is a no, never a silent yes
            log.exception("asking approval for %s (%s) failed", tool_use.name, tool_use.id)
            approved = False
        log.info("tool %s (%s) %s by %s", tool_use.name, tool_use.id, "approved" if approved else "declined",
                 ctx.user_id)
        return None if approved else ToolResultBlock(tool_use.id, declined(tool_use.name), True)
