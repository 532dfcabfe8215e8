"""Metered model calls: one usage row per call, also a failed one; each estimate calibrates the catalog."""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import AsyncIterator

from bot.accounting.pricing import cost_usd
from bot.errors import ModelError
from bot.llm import catalog
from bot.llm.base import Provider
from bot.messages import MessageDone, ModelRequest, StreamEvent, Usage
from bot.store import Store, UsageRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attribution:
    """Who a model call is charged to."""

    team_id: str
    user_id: str
    channel_id: str
    thread_ts: str | None
    surface: str


class Meter:
    """Wraps a provider so each call is accounted to one Slack user (invariant 4)."""

    def __init__(self, store: Store, provider: Provider, attribution: Attribution):
        self.store = store
        self.provider = provider
        self.attribution = attribution

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        started = time.monotonic()
        # Only the agent's own calls carry an estimate; nested tool calls (extract_record) do not.
        estimated = request.estimated_input_tokens
        recorded = False
        try:
            async for event in self.provider.stream(request):
                if isinstance(event, MessageDone):
                    recorded = True
                    await self._record(request.model, event.usage, started, stop_reason=event.stop_reason)
                    if estimated is not None:
                        self._calibrate(request.model, estimated, event.usage)
                yield event
        except ModelError as exc:
            await self._record(request.model, exc.usage or Usage(), started, error=type(exc).__name__)
            raise
        except (Exception, asyncio.CancelledError) as exc:
            # Cancelled (shutdown, Ctrl-C) or a provider bug: the call still happened, so it gets its row;
            # the tokens it spent are unknown here.
            if not recorded:
                await self._record(request.model, Usage(), started, error=type(exc).__name__)
            raise

    async def complete(self, request: ModelRequest) -> MessageDone:
        """One call, not streamed to anyone: the assembled message (used by nested tool calls)."""
        done: MessageDone | None = None
        async for event in self.stream(request):
            if isinstance(event, MessageDone):
                done = event
        if done is None:  # a provider that ends without MessageDone is a bug in the provider
            raise ModelError("the model stream ended without a final message")
        return done

    def _calibrate(self, model: str, estimated: int, usage: Usage) -> None:
        reported = usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens
        factor = catalog.calibrate(estimated, reported, model=model)
        log.debug("token estimate %d vs reported %d for %s: safety factor now %.3f",
                  estimated, reported, model, factor)

    async def _record(self, model: str, usage: Usage, started: float, *, stop_reason: str | None = None,
                error: str | None = None) -> None:
        a = self.attribution
        await self.store.record_usage(UsageRow(
            team_id=a.team_id, user_id=a.user_id, channel_id=a.channel_id, thread_ts=a.thread_ts,
            surface=a.surface, model=model,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_creation_input_tokens=usage.cache_creation_input_tokens,
            cache_read_input_tokens=usage.cache_read_input_tokens,
            cost_usd=cost_usd(model, usage),
            latency_ms=int((time.monotonic() - started) * 1000),
            stop_reason=stop_reason, error=error,
        ))
