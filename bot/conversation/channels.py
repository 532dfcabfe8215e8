"""Per-channel agents: a channel's settings (/threadbot) checked, recorded, and turned into its turns' profile."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from bot.conversation.agent import AgentProfile
from bot.errors import ConfigError
from bot.llm import catalog, plan_model
from bot.store import ChannelSettings, SettingChange, Store

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.llm.base import Provider
    from bot.llm.providers import Providers
    from tools.registry import Registry

# A persona and a few instructions; longer text belongs in documents the bot can search.
MAX_PROMPT_CHARS = 4000
CHANNEL_RULES = ("Instructions for this channel from its admins follow. They add to the rules above; where "
                 "they conflict, the rules above win.")


class InvalidSetting(ValueError):
    """A /threadbot value the bot cannot use; the message says why, and nothing was changed."""


@dataclass(frozen=True)
class TurnSetup:
    """How the turns of one channel run: the provider, the agent profile, and the model id as configured."""

    provider: "Provider"
    profile: AgentProfile
    configured_model: str


def channel_system_prompt(base: str, channel_prompt: str | None) -> str:
    """The bot's own prompt (formatting, sources, safety) first and unchanged, then the channel's persona.
    A fixed text per channel, so its cache prefix stays the same from turn to turn."""
    if not channel_prompt:
        return base
    return f"{base}\n\n{CHANNEL_RULES}\n\n{channel_prompt}"


class ChannelAgents:
    """The one place that knows what a channel's settings mean: valid values, and each turn's setup."""

    def __init__(self, *, settings: "Settings", store: Store, registry: "Registry", providers: "Providers"):
        self.settings = settings
        self.store = store
        self.registry = registry
        self.providers = providers

    async def settings_for(self, channel_id: str) -> ChannelSettings:
        return await self.store.channel_settings(channel_id) or ChannelSettings(channel_id)

    async def autoanswer(self, channel_id: str) -> bool:
        found = await self.store.channel_settings(channel_id)
        return found is not None and found.autoanswer

    async def model_for(self, channel_id: str) -> str:
        """The model id this channel's turns go to, as usage records it (ConfigError: it cannot be used)."""
        found = await self.settings_for(channel_id)
        return plan_model(self.settings, found.model or self.settings.model)[1]

    async def setup(self, channel_id: str) -> TurnSetup:
        found = await self.settings_for(channel_id)
        model = found.model or self.settings.model
        provider, bare = self.providers.resolve(model)
        tools = tuple(self.registry.select(found.tools)) if found.tools is not None else None
        profile = AgentProfile(model=bare, system_prompt=channel_system_prompt(self.settings.system_prompt,
                                                                                found.prompt), tools=tools)
        return TurnSetup(provider, profile, model)

    # --- checking values --------------------------------------------------------------------

    def check_prompt(self, text: str) -> str:
        text = text.strip()
        if not text:
            raise InvalidSetting("Give the prompt after the word: `/threadbot prompt You answer IT questions…`.")
        if len(text) > MAX_PROMPT_CHARS:
            raise InvalidSetting(f"That prompt is {len(text):,} characters; a channel prompt can have at most "
                                 f"{MAX_PROMPT_CHARS:,}. Put longer material in a document the bot can search.")
        return text

    def check_model(self, model: str) -> str:
        model = model.strip()
        if not model or len(model.split()) != 1:
            raise InvalidSetting("Give one model id: `/threadbot model claude-sonnet-4-6`.")
        try:
            self.providers.check(model, named=f"the model {model}")
        except ConfigError as exc:
            raise InvalidSetting(str(exc)) from None
        # A claude-… or gpt-… id the price table does not know is most likely a typo; a server of
        # one's own (openai:…) and the bot's own THREADBOT_MODEL are taken as they are.
        if not model.startswith("openai:") and model != self.settings.model and catalog.price_for(model) is None:
            raise InvalidSetting(f"I don't know the model {model}: use an id such as {self.settings.model}, or add "
                                 "it to THREADBOT_PRICING_FILE.")
        return model

    def check_tools(self, text: str) -> tuple[str, ...] | None:
        """None for `all`; otherwise the names, each a built-in or MCP tool, or an MCP server."""
        names = [part.strip() for part in text.replace(" ", ",").split(",") if part.strip()]
        if not names:
            raise InvalidSetting("Give tool names separated by commas, or `all`: `/threadbot tools get_weather`.")
        if [n.lower() for n in names] == ["all"]:
            return None
        if [n.lower() for n in names] == ["none"]:
            return ()
        known = set(self.registry.names) | set(self.registry.servers)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InvalidSetting(f"I have no tool or MCP server called {', '.join(f'`{n}`' for n in unknown)}. "
                                 f"Choose from: {self.available_tools()}, or `all`.")
        return tuple(dict.fromkeys(names))

    def available_tools(self) -> str:
        servers = [f"`{s}` (MCP server)" for s in self.registry.servers]
        return ", ".join([f"`{n}`" for n in self.registry.names] + servers) or "none"

    async def change(self, channel_id: str, *, team_id: str, user_id: str,
                     changes: dict[str, str | None]) -> list[SettingChange]:
        return await self.store.change_channel_settings(channel_id, team_id=team_id, user_id=user_id, changes=changes)


def tools_text(tools: Sequence[str] | None) -> str | None:
    """A tool selection as the store keeps it: None for all, "" for none, else comma-separated."""
    return None if tools is None else ",".join(tools)
