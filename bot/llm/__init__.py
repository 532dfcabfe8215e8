"""Model providers; `provider_for` picks one from a model id (THREADBOT_MODEL, or a channel's model)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from bot.config import secret_value
from bot.errors import ConfigError

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.llm.base import Provider

COMPATIBLE_PREFIX = "openai:"
# Model ids OpenAI itself serves; anything else for OpenAI goes through the `openai:` form.
OPENAI_MODEL_PREFIXES = ("gpt-", "chatgpt-", "o1", "o3", "o4", "text-", "codex-")

ACCEPTED_FORMS = (
    "claude-… (Anthropic, needs ANTHROPIC_API_KEY), gpt-…/o1…/o3…/o4…/chatgpt-… (OpenAI, needs "
    "OPENAI_API_KEY), or openai:<model> (any OpenAI-compatible server at OPENAI_BASE_URL)"
)


ProviderKind = Literal["anthropic", "openai", "compatible"]


def provider_for(settings: "Settings", model: str | None = None, *,
                 named: str | None = None) -> tuple["Provider", str]:
    """The provider for `model` (default settings.model) and the bare model id to send it; ConfigError names
    what to fix. `named` is how a message refers to the model (default `THREADBOT_MODEL=<id>`)."""
    kind, bare = plan_model(settings, model, named=named)
    return make_provider(settings, kind), bare


def plan_model(settings: "Settings", model: str | None = None, *, named: str | None = None) -> tuple[ProviderKind, str]:
    """Which provider serves `model` and the bare id it gets, without making one; ConfigError when the bot
    cannot use it (an unknown form, a missing key or base URL)."""
    model = (settings.model if model is None else model).strip()
    named = named or f"THREADBOT_MODEL={model}"
    if model.startswith("claude-"):
        if not secret_value(settings.anthropic_api_key):
            raise ConfigError(f"ANTHROPIC_API_KEY is not set: {named} needs an Anthropic API key.")
        return "anthropic", model
    if model.startswith(COMPATIBLE_PREFIX):
        bare = model[len(COMPATIBLE_PREFIX):].strip()
        if not bare:
            raise ConfigError(f"{named} names no model: use openai:<model>, e.g. openai:llama3.1.")
        if not secret_value(settings.openai_base_url):
            raise ConfigError(
                f"OPENAI_BASE_URL is not set: {named} needs the server's URL, "
                "e.g. http://localhost:11434/v1 for Ollama."
            )
        return "compatible", bare
    if model.startswith(OPENAI_MODEL_PREFIXES):
        if not secret_value(settings.openai_api_key):
            raise ConfigError(f"OPENAI_API_KEY is not set: {named} needs an OpenAI API key.")
        return "openai", model
    shown = f"THREADBOT_MODEL={model!r}" if named == f"THREADBOT_MODEL={model}" else named
    raise ConfigError(f"{shown} is not a model I know: use {ACCEPTED_FORMS}.")


def make_provider(settings: "Settings", kind: ProviderKind) -> "Provider":
    """A new provider of this kind, configured from the settings (plan_model checked what it needs)."""
    if kind == "anthropic":
        from bot.llm.anthropic import AnthropicProvider

        return AnthropicProvider(api_key=secret_value(settings.anthropic_api_key),
                                 base_url=secret_value(settings.anthropic_base_url) or None)
    from bot.llm.openai import OpenAIProvider

    if kind == "compatible":
        return OpenAIProvider(api_key=secret_value(settings.openai_api_key) or None,
                              base_url=secret_value(settings.openai_base_url), compatible=True)
    return OpenAIProvider(api_key=secret_value(settings.openai_api_key),
                          base_url=secret_value(settings.openai_base_url) or None)
