"""The providers one process uses: one per kind (Anthropic, OpenAI, OpenAI-compatible), made on first use."""
from __future__ import annotations

from typing import TYPE_CHECKING

from bot.llm import ProviderKind, make_provider, plan_model

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.llm.base import Provider


class Providers:
    """Turns a model id into (provider, bare id). A channel's model may need another provider than
    THREADBOT_MODEL's; each kind is made once and shared, so its HTTP connections are reused."""

    def __init__(self, settings: "Settings", *, default: "Provider | None" = None):
        self.settings = settings
        self._made: dict[ProviderKind, "Provider"] = {}
        if default is not None:
            self._made[plan_model(settings)[0]] = default

    def check(self, model: str, *, named: str | None = None) -> str:
        """The bare id of `model` if the bot can use it; ConfigError (one sentence) if not."""
        return plan_model(self.settings, model, named=named)[1]

    def resolve(self, model: str) -> tuple["Provider", str]:
        kind, bare = plan_model(self.settings, model)
        if kind not in self._made:
            self._made[kind] = make_provider(self.settings, kind)
        return self._made[kind], bare

    async def aclose(self) -> None:
        for provider in self._made.values():
            await provider.aclose()
        self._made.clear()
