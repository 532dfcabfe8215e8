"""Model prices per million tokens and the cost of one call, in exact Decimal USD."""
from __future__ import annotations

import json
import logging
import threading
import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping

from bot.errors import ConfigError
from bot.messages import Usage
from bot.llm.tokens import bare_model_id

log = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)
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


class PriceTable:
    """Built-in prices plus the operator's overrides; unknown models cost 0 with one warning each."""

    def __init__(self, overrides: Mapping[str, Price] | None = None):
        self.prices: dict[str, Price] = {**BUILTIN_PRICES, **(overrides or {})}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def price_for(self, model: str) -> Price | None:
        bare = bare_model_id(model)
        for candidate in (model, bare):
            if candidate in self.prices:
                return self.prices[candidate]
        best: str | None = None
        for key in self.prices:
            if bare.startswith(key) and bare[len(key)] in "-:@" and (best is None or len(key) > len(best)):
                best = key
        return self.prices[best] if best is not None else None

    def cost_usd(self, model: str, usage: Usage) -> Decimal:
        price = self.price_for(model)
        if price is None:
            with self._lock:
                first = model not in self._warned
                self._warned.add(model)
            if first:
                log.warning(
                    "No price known for model %r: its calls are recorded at $0. "
                    "Add it to THREADBOT_PRICING_FILE to account them.", model,
                )
            return Decimal(0)
        return (
            usage.input_tokens * price.input
            + usage.output_tokens * price.output
            + usage.cache_creation_input_tokens * price.cache_write
            + usage.cache_read_input_tokens * price.cache_read
        ) / MILLION


_table = PriceTable()


def configure(pricing_file: Path | str | None) -> PriceTable:
    """Install the built-in table plus the operator's file (settings.pricing_file); call at start-up."""
    global _table
    overrides, windows = load_pricing_file(pricing_file) if pricing_file else ({}, {})
    _table = PriceTable(overrides)
    if windows:
        from bot.conversation.context_window import set_context_window

        for model, tokens in windows.items():
            set_context_window(model, tokens)
    return _table


def price_table() -> PriceTable:
    return _table


def price_for(model: str) -> Price | None:
    return _table.price_for(model)


def cost_usd(model: str, usage: Usage) -> Decimal:
    """What one call cost: input at the input rate, cache creation at the write rate, reads at the read rate."""
    return _table.cost_usd(model, usage)


def load_pricing_file(path: Path | str) -> tuple[dict[str, Price], dict[str, int]]:
    """Read a JSON or TOML price file. Shape (TOML; JSON is the same as an object):

        [models."llama3.1:8b"]
        input = 0          # USD per million tokens
        output = 0
        context_window = 32768   # optional, for trimming history

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
    for model, entry in models.items():
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: the entry for {model!r} must be a table with input and output prices.")
        unknown = set(entry) - {"input", "output", "cache_write", "cache_read", "context_window"}
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
            if not isinstance(window, int) or isinstance(window, bool) or window < 1024:
                raise ConfigError(f"{where}: context_window for {model!r} must be a whole number >= 1024.")
            windows[model] = window
    return prices, windows


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
