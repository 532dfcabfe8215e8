"""Services: the long-lived parts one bot process shares, whatever its surface (settings, store, model, tools, HTTP)."""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
import threading
from dataclasses import dataclass, field

import aiohttp

from bot.config import Settings
from bot.conversation import Conversations
from bot.llm import provider_for
from bot.llm.base import Provider
from bot.llm.catalog import configure as configure_catalog
from bot.store import Store, open_store
from knowledge.embed import make_embedder
from knowledge.ingest import reembed
from tools.mcp import MCPManager, load_servers_file
from tools.registry import Registry

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    store: Store
    provider: Provider
    model: str
    registry: Registry
    http: aiohttp.ClientSession
    conversations: Conversations
    reembedding: "asyncio.Task[int] | None" = None
    mcp: MCPManager | None = None
    _stop_reembedding: threading.Event = field(default_factory=threading.Event)
    # This process as the owner of the turns it accepts (bot/store turns), unique across restarts.
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")

    @classmethod
    async def create(cls, settings: Settings) -> "Services":
        provider, model = provider_for(settings)
        configure_catalog(settings.pricing_file)
        store = await open_store(settings)
        await store.prune_events()  # Slack retries within hours; a week of de-dup keys is plenty
        await store.prune_turns()  # done turns are only kept a day (their event claims stay a week)
        registry = Registry.discover()
        mcp = await start_mcp(settings, registry)
        # One HTTP session for every tool call (connection reuse, one place for timeouts).
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        conversations = Conversations(settings=settings, store=store, provider=provider, model=model,
                                      registry=registry, http=http)
        services = cls(settings=settings, store=store, provider=provider, model=model, registry=registry,
                       http=http, conversations=conversations, mcp=mcp)
        await services.start_reembedding()
        return services

    async def start_reembedding(self) -> None:
        """After THREADBOT_EMBEDDER changes, move every document to the new model in the background:
        vectors of two models are never compared, so until then those documents are found by BM25 only."""
        embedder = make_embedder(self.settings)
        stale = await self.store.knowledge_document_ids_outside(embedder.model, embedder.dim)
        if stale:
            log.info("re-embedding %d documents with %s", len(stale), embedder.model)
            self.reembedding = asyncio.create_task(
                reembed(self.store, embedder, progress=self._check_stop_reembedding))

    def _check_stop_reembedding(self, _: object) -> None:
        # Called before each document: stopping here leaves every document whole in one model.
        if self._stop_reembedding.is_set():
            raise asyncio.CancelledError

    async def aclose(self) -> None:
        if self.mcp is not None:
            await self.mcp.close()  # stdio servers run in their own session: nothing else would stop them
        if self.reembedding is not None and not self.reembedding.done():
            self._stop_reembedding.set()  # the rest moves at the next start
            await asyncio.wait([self.reembedding])
        await self.http.close()
        await self.conversations.providers.aclose()  # THREADBOT_MODEL's provider and any a channel needed
        await self.store.close()


async def start_mcp(settings: Settings, registry: Registry) -> MCPManager | None:
    """Start the servers of THREADBOT_MCP_CONFIG (a malformed file stops start-up) and offer their tools."""
    if settings.mcp_config is None:
        return None
    servers = load_servers_file(settings.mcp_config, settings.environment())
    manager = MCPManager(servers, reserved_names=registry.names)
    await manager.start()
    registry.attach_mcp(manager)
    return manager
