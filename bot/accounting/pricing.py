"""The cost of one model call in exact Decimal USD, from the model catalog's prices (bot/llm/catalog.py)."""
from __future__ import annotations

import logging
import threading
from decimal import Decimal

from bot.llm import catalog
from bot.messages import Usage

log = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)

_warned: set[str] = set()
_lock = threading.Lock()


def cost_usd(model: str, usage: Usage) -> Decimal:
    """What one call cost: input at the input rate, cache creation at the write rate, reads at the read
    rate. A model without a price costs 0, with one warning per model so the operator can add it."""
    price = catalog.price_for(model)
    if price is None:
        with _lock:
            first = model not in _warned
            _warned.add(model)
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
