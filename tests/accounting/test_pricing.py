"""Prices per model, exact Decimal costs, the operator's override file and unknown models."""
from __future__ import annotations

import json
import logging
from decimal import Decimal

import pytest

from bot.accounting import pricing
from bot.llm import catalog
from bot.errors import ConfigError
from bot.messages import Usage


@pytest.fixture(autouse=True)
def _reset_pricing():
    catalog.configure(None)
    pricing._warned.clear()
    yield
    catalog.configure(None)


USAGE = Usage(input_tokens=1_000, output_tokens=500, cache_creation_input_tokens=2_000, cache_read_input_tokens=10_000)


def test_claude_sonnet_cost_is_exact():
    # 1,000 x $3 + 500 x $15 + 2,000 x $3.75 + 10,000 x $0.30, per million
    assert pricing.cost_usd("claude-sonnet-4-6", USAGE) == Decimal("0.021")


def test_cache_rates_follow_anthropic_multipliers():
    price = catalog.price_for("claude-haiku-4-5")
    assert (price.input, price.output, price.cache_write, price.cache_read) == (
        Decimal(1), Decimal(5), Decimal("1.25"), Decimal("0.1"))
    opus = catalog.price_for("claude-opus-4-1")
    assert (opus.cache_write, opus.cache_read) == (Decimal("18.75"), Decimal("1.5"))


def test_dated_snapshots_and_new_point_releases_match_their_family():
    assert catalog.price_for("claude-sonnet-4-5-20250929") == catalog.price_for("claude-sonnet-4")
    assert catalog.price_for("claude-opus-4-5-20251101").input == Decimal(5)
    assert catalog.price_for("claude-opus-4-20250514").input == Decimal(15)
    assert catalog.price_for("gpt-4o-mini-2024-07-18").input == Decimal("0.15")
    assert catalog.price_for("gpt-4o-2024-08-06").input == Decimal("2.50")
    assert catalog.price_for("o3-mini").input == Decimal("1.10")
    assert catalog.price_for("o3-pro").input == Decimal(20)
    assert catalog.price_for("gpt-4.1-nano-2025-04-14").output == Decimal("0.40")


def test_openai_cached_input_and_no_write_premium():
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cache_creation_input_tokens=0,
                  cache_read_input_tokens=1_000_000)
    assert pricing.cost_usd("gpt-4o-mini", usage) == Decimal("0.825")  # 0.15 + 0.60 + 0.075
    assert catalog.price_for("gpt-4.1").cache_write == Decimal(2)


def test_unknown_model_costs_zero_and_warns_once(caplog):
    with caplog.at_level(logging.WARNING, logger="bot.accounting.pricing"):
        assert pricing.cost_usd("openai:llama3.1:8b", USAGE) == Decimal(0)
        assert pricing.cost_usd("openai:llama3.1:8b", USAGE) == Decimal(0)
        assert pricing.cost_usd("gpt-5.9-experimental", USAGE) == Decimal(0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "openai:llama3.1:8b" in warnings[0] and "THREADBOT_PRICING_FILE" in warnings[0]


def test_toml_override_file(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text(
        '[models."llama3.1"]\ninput = 0.1\noutput = 0.2\ncontext_window = 32768\n\n'
        '[models."claude-sonnet-4-6"]\ninput = 2.7\noutput = 13.5\ncache_write = 3\ncache_read = 0.25\n'
    )
    catalog.configure(path)
    # Family match on the operator's own entry; cache rates default to 1.25x / 0.1x input.
    assert catalog.price_for("openai:llama3.1:8b") == catalog.Price(
        Decimal("0.1"), Decimal("0.2"), Decimal("0.125"), Decimal("0.01"))
    assert pricing.cost_usd("claude-sonnet-4-6", USAGE) == Decimal("0.01795")  # (2,700 + 6,750 + 6,000 + 2,500) / 1e6
    # Built-ins the file does not mention are kept.
    assert catalog.price_for("claude-opus-4-6").input == Decimal(5)
    assert catalog.context_window("openai:llama3.1:8b") == 32768


def test_json_override_file(tmp_path):
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"my-model": {"input": "1", "output": "2"}}))
    catalog.configure(path)
    assert pricing.cost_usd("my-model", Usage(input_tokens=3, output_tokens=4)) == Decimal("0.000011")


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('[models."x"]\ninput = 1\n', "needs both"),
        ('[models."x"]\ninput = -1\noutput = 1\n', "zero or more"),
        ('[models."x"]\ninput = 1\noutput = 1\nprice = 3\n', "unknown key"),
        ("this is = not toml [", "not valid TOML"),
        ('[models."x"]\ncontext_window = 10\n', "context_window"),
    ],
)
def test_bad_override_file_names_the_setting(tmp_path, content, fragment):
    path = tmp_path / "prices.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        catalog.configure(path)
    assert "THREADBOT_PRICING_FILE" in str(info.value) and fragment in str(info.value)


def test_missing_override_file(tmp_path):
    with pytest.raises(ConfigError, match="THREADBOT_PRICING_FILE"):
        catalog.configure(tmp_path / "nope.toml")
