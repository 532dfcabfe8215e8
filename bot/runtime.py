"""Runtime: the long-lived objects one bot process shares (settings, store, model, tools, HTTP)."""
from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from bot.config import Settings
from bot.conversation import Conversations
from bot.edit_budget import EditBudget
from bot.llm import provider_for
from bot.llm.base import Provider
from bot.pricing import configure as configure_pricing
from bot.store import Store
from tools.registry import Registry


@dataclass
class Runtime:
    settings: Settings
    store: Store
    provider: Provider
    model: str
    registry: Registry
    http: aiohttp.ClientSession
    budget: EditBudget
    conversations: Conversations
    # chat.appendStream (THREADBOT_STREAMING=native) has its own workspace rate: Tier 4.
    stream_budget: EditBudget = field(default_factory=lambda: EditBudget(per_minute=100, burst=20))

    @classmethod
    async def create(cls, settings: Settings) -> "Runtime":
        provider, model = provider_for(settings)
        configure_pricing(settings.pricing_file)
        store = Store(settings.db_path)
        registry = Registry.discover()
        # One HTTP session for every tool call (connection reuse, one place for timeouts).
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        conversations = Conversations(settings=settings, store=store, provider=provider, model=model,
                                      registry=registry, http=http)
        return cls(settings=settings, store=store, provider=provider, model=model, registry=registry,
                   http=http, budget=EditBudget(per_minute=50, burst=20, reserve_for_finals=10),
                   conversations=conversations)

    async def aclose(self) -> None:
        await self.http.close()
        await self.provider.aclose()
        self.store.close()
