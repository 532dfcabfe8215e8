"""Model providers; `provider_for` picks one from THREADBOT_MODEL."""
from __future__ import annotations

from typing import TYPE_CHECKING

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


def provider_for(settings: "Settings") -> tuple["Provider", str]:
    """The provider for settings.model and the bare model id to send it; ConfigError names what to fix."""
    model = settings.model.strip()
    if model.startswith("claude-"):
        key = secret_value(settings.anthropic_api_key)
        if not key:
            raise ConfigError(
                f"ANTHROPIC_API_KEY is not set: THREADBOT_MODEL={model} needs an Anthropic API key."
            )
        from bot.llm.anthropic import AnthropicProvider

        return AnthropicProvider(api_key=key, base_url=secret_value(settings.anthropic_base_url) or None), model

    from bot.llm.openai import OpenAIProvider

    if model.startswith(COMPATIBLE_PREFIX):
        bare = model[len(COMPATIBLE_PREFIX):].strip()
        base_url = secret_value(settings.openai_base_url)
        if not bare:
            raise ConfigError(f"THREADBOT_MODEL={model} names no model: use openai:<model>, e.g. openai:llama3.1.")
        if not base_url:
            raise ConfigError(
                f"OPENAI_BASE_URL is not set: THREADBOT_MODEL={model} needs the server's URL, "
                "e.g. http://localhost:11434/v1 for Ollama."
            )
        provider = OpenAIProvider(
            api_key=secret_value(settings.openai_api_key) or None, base_url=base_url, compatible=True
        )
        return provider, bare

    if model.startswith(OPENAI_MODEL_PREFIXES):
        key = secret_value(settings.openai_api_key)
        if not key:
            raise ConfigError(f"OPENAI_API_KEY is not set: THREADBOT_MODEL={model} needs an OpenAI API key.")
        return OpenAIProvider(api_key=key, base_url=secret_value(settings.openai_base_url) or None), model

    raise ConfigError(f"THREADBOT_MODEL={model!r} is not a model I know: use {ACCEPTED_FORMS}.")

