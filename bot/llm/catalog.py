"""The model catalog: what the bot knows per model — context window, token-estimate safety factor (calibrated
against what the provider reports), prices, capabilities — and the operator's pricing file that extends it.

Token estimates come from tiktoken's cl100k/o200k (bot/llm/tokens.py). For OpenAI models that is the real
tokenizer; Claude's tokenizer is not public and counts *more* tokens than cl100k for the same text
(roughly 1.1-1.3x on English and code, more on newer Claude tokenizers). So for Claude the estimate
is multiplied by CLAUDE_SAFETY_FACTOR = 1.35. No real API is reachable here to measure against, so the
factor is deliberately on the high side: over-estimating only drops an old turn a little early,
under-estimating fails the call. `calibrate()` feeds back real `input_tokens` reports; it tightens or
widens the factor per model within [1.0, 2.0].
"""
from __future__ import annotations

import json
import threading
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping, TypeVar

from bot.errors import ConfigError
from bot.llm.tokens import bare_model_id

T = TypeVar("T")

# --- prices ------------------------------------------------------------------------------------

# Anthropic bills a 5-minute cache write at 1.25x input and a cache read at 0.1x input.
CACHE_WRITE_FACTOR = Decimal("1.25")
CACHE_READ_FACTOR = Decimal("0.1")

# When the built-in table was last checked against the providers' published prices.
PRICES_AS_OF = "2026-11-26"


@dataclass(frozen=True)
class Price:
    """USD per million tokens. `input` is uncached input (Anthropic's `input_tokens`)."""

    input: Decimal
    output: Decimal
    cache_write: Decimal
    cache_read: Decimal


def _anthropic(input_: str, output: str, cache_read: str | None = None) -> Price:
    inp = Decimal(input_)
    read = Decimal(cache_read) if cache_read is not None else inp * CACHE_READ_FACTOR
    return Price(inp, Decimal(output), inp * CACHE_WRITE_FACTOR, read)


def _openai(input_: str, output: str, cached: str | None = None) -> Price:
    # OpenAI charges nothing extra to write its automatic cache; a write costs plain input.
    inp = Decimal(input_)
    return Price(inp, Decimal(output), inp, Decimal(cached) if cached is not None else inp)


# Sources: platform.claude.com/docs/en/about-claude/pricing and the model overview pages; OpenAI's
# pricing page as reported by several dated price trackers (Mar-Nov 2026). Ids match exactly first,
# then by the longest id that is a prefix at a `-` boundary (so dated snapshots and new point
# releases of a family find their family's price). Long-context (>200k) and batch rates are not
# modelled; Haiku 5.5 is priced at its <=100k-prompt band.
BUILTIN_PRICES: dict[str, Price] = {
    # Anthropic
    "claude-fable-5-1": _anthropic("10", "50", "0.25"),
    "claude-fable-5": _anthropic("10", "50", "1"),
    "claude-opus-5-5": _anthropic("4", "20", "0.20"),
    "claude-opus-5": _anthropic("5", "25"),
    "claude-sonnet-5-5": _anthropic("2", "10", "0.10"),  # cache read cut from 0.20 on 2026-10-07
    "claude-sonnet-5": _anthropic("2", "10"),
    "claude-haiku-5-5": _anthropic("0.10", "0.50", "0.01"),
    "claude-opus-4-8": _anthropic("5", "25"),
    "claude-opus-4-7": _anthropic("5", "25"),
    "claude-opus-4-6": _anthropic("5", "25"),
    "claude-opus-4-5": _anthropic("5", "25"),
    "claude-opus-4-1": _anthropic("15", "75"),
    "claude-opus-4-0": _anthropic("15", "75"),
    "claude-opus-4": _anthropic("15", "75"),
    "claude-sonnet-4": _anthropic("3", "15"),  # 4, 4.5, 4.6
    "claude-haiku-4-5": _anthropic("1", "5"),
    "claude-haiku-4": _anthropic("1", "5"),
    "claude-3-7-sonnet": _anthropic("3", "15"),
    "claude-3-5-sonnet": _anthropic("3", "15"),
    "claude-3-5-haiku": _anthropic("0.80", "4"),
    "claude-3-haiku": Price(Decimal("0.25"), Decimal("1.25"), Decimal("0.30"), Decimal("0.03")),
    "claude-3-opus": _anthropic("15", "75"),
    # OpenAI
    "gpt-4o": _openai("2.50", "10", "1.25"),
    "gpt-4o-mini": _openai("0.15", "0.60", "0.075"),
    "chatgpt-4o-latest": _openai("5", "15"),
    "gpt-4.1": _openai("2", "8", "0.50"),
    "gpt-4.1-mini": _openai("0.40", "1.60", "0.10"),
    "gpt-4.1-nano": _openai("0.10", "0.40", "0.025"),
    "gpt-5": _openai("1.25", "10", "0.125"),
    "gpt-5-mini": _openai("0.25", "2", "0.025"),
    "gpt-5-nano": _openai("0.05", "0.40", "0.005"),
    "gpt-5-pro": _openai("15", "120"),
    "o1": _openai("15", "60", "7.50"),
    "o1-mini": _openai("1.10", "4.40", "0.55"),
    "o1-pro": _openai("150", "600"),
    "o3": _openai("2", "8", "0.50"),
    "o3-mini": _openai("1.10", "4.40", "0.55"),
    "o3-pro": _openai("20", "80"),
    "o4-mini": _openai("1.10", "4.40", "0.275"),
}


# --- context windows and safety factors --------------------------------------------------------

CLAUDE_SAFETY_FACTOR = 1.35
OPENAI_SAFETY_FACTOR = 1.05  # same tokenizer; covers framing we do not count exactly
DEFAULT_SAFETY_FACTOR = 1.25  # local models: their tokenizers differ from cl100k in either direction
# Unknown and local models (Ollama, vLLM, LM Studio …): small on purpose. Ollama in particular
# truncates silently beyond its num_ctx, which is worse than trimming. Override per model.
DEFAULT_CONTEXT_WINDOW = 8_192
MIN_CONTEXT_WINDOW = 1024

CONTEXT_WINDOWS: dict[str, int] = {
    "claude-": 200_000,
    "claude-opus-5": 1_000_000,
    "claude-sonnet-5": 1_000_000,
    "claude-haiku-5": 1_000_000,
    "claude-fable-5": 1_000_000,
    "gpt-4o": 128_000,
    "chatgpt-4o": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "gpt-5": 272_000,  # 400k total, of which 272k input
    "o1": 200_000,
    "o1-mini": 128_000,
    "o3": 200_000,
    "o4-mini": 200_000,
}

# --- capabilities ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What a model accepts beyond text. `vision`: image input (Anthropic image blocks, OpenAI image_url)."""

    vision: bool = False


# Unknown and local models get Capabilities() (text only) unless the pricing file says otherwise.
CAPABILITIES: dict[str, Capabilities] = {
    "claude-": Capabilities(vision=True),
    "gpt-4o": Capabilities(vision=True),
    "chatgpt-4o": Capabilities(vision=True),
    "gpt-4.1": Capabilities(vision=True),
    "gpt-5": Capabilities(vision=True),
}


def lookup(table: Mapping[str, T], model: str) -> T | None:
    """The entry for `model`: its exact id (with or without a routing prefix such as `openai:`) first,
    else the longest key that is a prefix of it at a boundary (a key ending in `-`, or followed by `-`,
    `:` or `@`), so dated snapshots and point releases find their family's entry."""
    bare = bare_model_id(model)
    for candidate in (model, bare):
        if candidate in table:
            return table[candidate]
    best: str | None = None
    for key in table:
        if bare.startswith(key) and (key.endswith("-") or bare[len(key):len(key) + 1] in ("-", ":", "@")) and (
            best is None or len(key) > len(best)
        ):
            best = key
    return table[best] if best is not None else None


class Catalog:
    """The built-in tables plus the operator's overrides, and the safety factors calibrated so far."""

    def __init__(self, *, prices: Mapping[str, Price] | None = None, windows: Mapping[str, int] | None = None,
                 capabilities: Mapping[str, Capabilities] | None = None):
        self.prices: dict[str, Price] = {**BUILTIN_PRICES, **(prices or {})}
        self.windows: dict[str, int] = dict(windows or {})  # checked before CONTEXT_WINDOWS
        self.capabilities_table: dict[str, Capabilities] = {**CAPABILITIES, **(capabilities or {})}
        self._calibrated: dict[str, float] = {}
        self._lock = threading.Lock()

    def price_for(self, model: str) -> Price | None:
        return lookup(self.prices, model)

    def set_context_window(self, model: str, tokens: int) -> None:
        """Operator override (e.g. the pricing file's `context_window`): exact id or a family prefix."""
        if tokens < MIN_CONTEXT_WINDOW:
            raise ValueError("a context window below 1024 tokens cannot hold a conversation")
        with self._lock:
            self.windows[model] = tokens

    def context_window(self, model: str) -> int:
        """Input+output tokens the model accepts; DEFAULT_CONTEXT_WINDOW when the model is unknown."""
        with self._lock:
            hit = lookup(self.windows, model)
        if hit is None:
            hit = lookup(CONTEXT_WINDOWS, model)
        return hit if hit is not None else DEFAULT_CONTEXT_WINDOW

    def capabilities(self, model: str) -> Capabilities:
        return lookup(self.capabilities_table, model) or Capabilities()

    def safety_factor(self, model: str) -> float:
        """What our token estimate is multiplied by before it is compared with the window."""
        with self._lock:
            if model in self._calibrated:
                return self._calibrated[model]
        bare = bare_model_id(model)
        if bare.startswith("claude"):
            return CLAUDE_SAFETY_FACTOR
        if bare.startswith(("gpt-", "chatgpt-", "o1", "o3", "o4")) and not model.startswith("openai:"):
            return OPENAI_SAFETY_FACTOR
        return DEFAULT_SAFETY_FACTOR

    def calibrate(self, estimated: int, reported_input_tokens: int, *, model: str) -> float:
        """Feed back one call: `estimated` = our count of system+tools+messages, `reported_input_tokens` =
        input + cache_creation + cache_read tokens from the provider. Returns the factor now in use.

        The factor moves towards the observed ratio plus 10 % headroom (an exponential average, so one
        odd call does not swing it) and stays within [1.0, 2.0]."""
        current = self.safety_factor(model)
        if estimated <= 0 or reported_input_tokens <= 0:
            return current
        observed = reported_input_tokens / estimated * 1.10
        updated = min(2.0, max(1.0, 0.8 * current + 0.2 * observed))
        with self._lock:
            self._calibrated[model] = updated
        return updated


# The process's catalog: built-in tables until start-up installs the operator's file with configure().
_catalog = Catalog()


def configure(pricing_file: Path | str | None) -> Catalog:
    """Install a fresh catalog: the built-in tables plus the operator's file (settings.pricing_file)."""
    global _catalog
    if pricing_file:
        prices, windows, capabilities = load_pricing_file(pricing_file)
        _catalog = Catalog(prices=prices, windows=windows, capabilities=capabilities)
    else:
        _catalog = Catalog()
    return _catalog


def price_for(model: str) -> Price | None:
    return _catalog.price_for(model)


def context_window(model: str) -> int:
    return _catalog.context_window(model)


def set_context_window(model: str, tokens: int) -> None:
    _catalog.set_context_window(model, tokens)


def capabilities(model: str) -> Capabilities:
    return _catalog.capabilities(model)


def safety_factor(model: str) -> float:
    return _catalog.safety_factor(model)


def calibrate(estimated: int, reported_input_tokens: int, *, model: str) -> float:
    return _catalog.calibrate(estimated, reported_input_tokens, model=model)


# --- the operator's pricing file ---------------------------------------------------------------

_FILE_KEYS = {"input", "output", "cache_write", "cache_read", "context_window", "vision"}


def load_pricing_file(path: Path | str) -> tuple[dict[str, Price], dict[str, int], dict[str, Capabilities]]:
    """Read a JSON or TOML price file. Shape (TOML; JSON is the same as an object):

        [models."llama3.1:8b"]
        input = 0          # USD per million tokens
        output = 0
        context_window = 32768   # optional, for trimming history
        vision = true            # optional: the model takes image input (default: false for unknown models)

        [models."claude-sonnet-4-6"]
        input = 2.70
        output = 13.50
        cache_write = 3.375      # optional, default 1.25 x input
        cache_read = 0.27        # optional, default 0.1 x input

    A top-level object of models without the `models` key is accepted too.
    """
    path = Path(path).expanduser()
    where = f"THREADBOT_PRICING_FILE ({path})"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it: {exc.strerror}.") from None
    try:
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{where}: not valid {'JSON' if path.suffix.lower() == '.json' else 'TOML'}: {exc}.") from None
    models = data.get("models", data) if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise ConfigError(f"{where}: expected a table of models, e.g. [models.\"my-model\"] input = 1 output = 2.")
    prices: dict[str, Price] = {}
    windows: dict[str, int] = {}
    capabilities: dict[str, Capabilities] = {}
    for model, entry in models.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: the entry for {model!r} must be a table with input and output prices.")
        unknown = set(entry) - _FILE_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} for {model!r}.")
        if "input" in entry or "output" in entry:
            inp = _money(entry, "input", model, where)
            prices[model] = Price(
                input=inp,
                output=_money(entry, "output", model, where),
                cache_write=_money(entry, "cache_write", model, where, default=inp * CACHE_WRITE_FACTOR),
                cache_read=_money(entry, "cache_read", model, where, default=inp * CACHE_READ_FACTOR),
            )
        if "context_window" in entry:
            window = entry["context_window"]
            if not isinstance(window, int) or isinstance(window, bool) or window < MIN_CONTEXT_WINDOW:
                raise ConfigError(f"{where}: context_window for {model!r} must be a whole number >= 1024.")
            windows[model] = window
        if "vision" in entry:
            if not isinstance(entry["vision"], bool):
                raise ConfigError(f"{where}: vision for {model!r} must be true or false.")
            capabilities[model] = Capabilities(vision=entry["vision"])
    return prices, windows, capabilities


def _money(entry: dict, key: str, model: str, where: str, *, default: Decimal | None = None) -> Decimal:
    if key not in entry:
        if default is None:
            raise ConfigError(f"{where}: {model!r} needs both `input` and `output` (USD per million tokens).")
        return default
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{where}: {key} for {model!r} must be a number.")
    try:
        # str() first so a TOML/JSON float 0.1 becomes Decimal("0.1"), not its binary expansion.
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ConfigError(f"{where}: {key} for {model!r} must be a number, not {value!r}.") from None
    if not amount.is_finite() or amount < 0:
        raise ConfigError(f"{where}: {key} for {model!r} must be zero or more.")
    return amount
