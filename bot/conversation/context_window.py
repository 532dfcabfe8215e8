"""Fitting thread history into the model's context window, and where the rolling cache point goes.

Token estimates come from tiktoken's cl100k/o200k (bot/tokens.py). For OpenAI models that is the real
tokenizer; Claude's tokenizer is not public and counts *more* tokens than cl100k for the same text
(roughly 1.1-1.3x on English and code, more on newer Claude tokenizers). So for Claude the estimate
is multiplied by CLAUDE_SAFETY_FACTOR = 1.35 and a fixed SAFETY_MARGIN of tokens is kept free on top
of `max_tokens`. No real API is reachable here to measure against, so the factor is deliberately on
the high side: over-estimating only drops an old turn a little early, under-estimating fails the call.
`calibrate()` lets the caller feed back real `input_tokens` reports; it tightens or widens the factor
per model within [1.0, 2.0].
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

from bot.errors import MessageTooLarge, PromptTooLong
from bot.messages import Message, ToolResultBlock
from bot.store.conversations import StoredMessage
from bot.llm.tokens import bare_model_id, count_message_tokens

SAFETY_MARGIN = 1024
CLAUDE_SAFETY_FACTOR = 1.35
OPENAI_SAFETY_FACTOR = 1.05  # same tokenizer; covers framing we do not count exactly
DEFAULT_SAFETY_FACTOR = 1.25  # local models: their tokenizers differ from cl100k in either direction
# Unknown and local models (Ollama, vLLM, LM Studio …): small on purpose. Ollama in particular
# truncates silently beyond its num_ctx, which is worse than trimming. Override per model.
DEFAULT_CONTEXT_WINDOW = 8_192

# Longest matching prefix (at a `-` boundary, or exact) wins.
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

_overrides: dict[str, int] = {}
_calibrated: dict[str, float] = {}
_lock = threading.Lock()


def set_context_window(model: str, tokens: int) -> None:
    """Operator override (e.g. from the pricing file's `context_window`): exact id or a family prefix."""
    if tokens < 1024:
        raise ValueError("a context window below 1024 tokens cannot hold a conversation")
    with _lock:
        _overrides[model] = tokens


def context_window(model: str) -> int:
    """Input+output tokens the model accepts; DEFAULT_CONTEXT_WINDOW when the model is unknown."""
    for table in (_overrides, CONTEXT_WINDOWS):
        hit = _lookup(table, model)
        if hit is not None:
            return hit
    return DEFAULT_CONTEXT_WINDOW


def _lookup(table: dict[str, int], model: str) -> int | None:
    bare = bare_model_id(model)
    for candidate in (model, bare):
        if candidate in table:
            return table[candidate]
    best = None
    for key in table:
        if bare.startswith(key) and (key.endswith("-") or bare[len(key)] in "-:@") and (
            best is None or len(key) > len(best)
        ):
            best = key
    return table[best] if best is not None else None


def safety_factor(model: str) -> float:
    with _lock:
        if model in _calibrated:
            return _calibrated[model]
    bare = bare_model_id(model)
    if bare.startswith("claude"):
        return CLAUDE_SAFETY_FACTOR
    if bare.startswith(("gpt-", "chatgpt-", "o1", "o3", "o4")) and not model.startswith("openai:"):
        return OPENAI_SAFETY_FACTOR
    return DEFAULT_SAFETY_FACTOR


def calibrate(estimated: int, reported_input_tokens: int, *, model: str) -> float:
    """Feed back one call: `estimated` = our count of system+tools+messages, `reported_input_tokens` =
    input + cache_creation + cache_read tokens from the provider. Returns the factor now in use.

    The factor moves towards the observed ratio plus 10 % headroom (an exponential average, so one
    odd call does not swing it) and stays within [1.0, 2.0]."""
    if estimated <= 0 or reported_input_tokens <= 0:
        return safety_factor(model)
    observed = reported_input_tokens / estimated * 1.10
    current = safety_factor(model)
    updated = min(2.0, max(1.0, 0.8 * current + 0.2 * observed))
    with _lock:
        _calibrated[model] = updated
    return updated


def input_budget(*, model: str, max_tokens: int) -> int:
    """Estimated (pre-factor) tokens the prompt may have: window - max_tokens - margin, / factor."""
    room = context_window(model) - max_tokens - SAFETY_MARGIN
    return max(0, int(room / safety_factor(model)))


@dataclass(frozen=True)
class Trimmed:
    messages: list[Message]
    estimated_tokens: int  # history only, before the safety factor
    dropped: int  # stored messages left out


def fit_history(
    messages: Sequence[StoredMessage | Message],
    *,
    model: str,
    max_tokens: int,
    system_tokens: int,
    tools_tokens: int,
) -> list[Message]:
    """The newest whole turns that fit the model's window, as a valid request. See trim_history."""
    return trim_history(
        messages, model=model, max_tokens=max_tokens, system_tokens=system_tokens, tools_tokens=tools_tokens
    ).messages


def trim_history(
    messages: Sequence[StoredMessage | Message],
    *,
    model: str,
    max_tokens: int,
    system_tokens: int,
    tools_tokens: int,
    step_fraction: float = 0.25,
) -> Trimmed:
    """Drop the oldest turns until the rest fits in context_window(model) - max_tokens - margin.

    A turn starts at a user message that carries no tool_result and runs to the next such message,
    so a tool_use and its tool_result are never separated and the request always starts with a real
    user message. Same-role neighbours (an unanswered user message followed by the next) are merged so
    roles alternate.

    The cut is snapped to steps of `step_fraction` of the budget (measured from the start of the
    thread), so the kept prefix stays the same for many calls in a row and prompt caching keeps hitting
    instead of being invalidated by every newly dropped turn.

    Raises MessageTooLarge when the newest user message alone cannot fit, PromptTooLong when the
    current turn (with its tool rounds) cannot.
    """
    budget = input_budget(model=model, max_tokens=max_tokens) - system_tokens - tools_tokens
    if budget <= 0:
        raise PromptTooLong(f"system prompt and tools alone exceed the budget for {model}")

    # Walk back from the newest message, stopping at the first turn that no longer fits: the cost is
    # proportional to what is kept, not to the length of the thread.
    starts: list[tuple[int, int]] = []  # (index of a turn start, tokens from it to the end), newest first
    suffix = 0
    stopped_at: int | None = None
    for i in range(len(messages) - 1, -1, -1):
        message, count = _message_and_count(messages[i])
        suffix += count
        if message.role == "user" and _starts_turn(message):
            if suffix > budget:
                if not starts:
                    if count > budget:
                        raise MessageTooLarge()
                    raise PromptTooLong(f"current turn needs ~{suffix} tokens, budget {budget}")
                stopped_at = i
                break
            starts.append((i, suffix))
    if not starts:
        return Trimmed([], 0, len(messages))

    begin, kept_tokens = starts[-1]
    if stopped_at is not None and step_fraction > 0:
        # Snap the cut forward to a step boundary measured from the start of the thread, so it only
        # moves every `step` tokens of growth and the cached prompt prefix survives in between.
        total = suffix + sum(_message_and_count(messages[i])[1] for i in range(stopped_at))
        step = max(1, int(budget * step_fraction))
        boundary = -(-(total - kept_tokens) // step) * step
        for index, tokens_from in reversed(starts):
            begin, kept_tokens = index, tokens_from
            if total - tokens_from >= boundary:
                break
    kept = [_message_and_count(messages[i])[0] for i in range(begin, len(messages))]
    return Trimmed(_alternate(kept), kept_tokens, begin)


def _message_and_count(item: StoredMessage | Message) -> tuple[Message, int]:
    if isinstance(item, StoredMessage):
        count = item.token_count
        return item.message, count if count is not None else count_message_tokens(item.message)
    return item, count_message_tokens(item)


def _starts_turn(message: Message) -> bool:
    if message.role != "user":
        return False
    for block in message.content:
        if type(block) is ToolResultBlock:
            return False
    return True


def _alternate(messages: list[Message]) -> list[Message]:
    out: list[Message] = []
    for message in messages:
        if out and out[-1].role == message.role:
            out[-1] = Message(message.role, [*out[-1].content, *message.content])
        else:
            out.append(message)
    return out


def cache_point(messages: Sequence[Message]) -> int | None:
    """Index of the message after which the rolling history cache breakpoint goes, or None.

    Mid tool loop (the request ends with tool_results) the next call follows within seconds, so the
    whole request is marked and the next round reads it all from cache. At the start of a turn the
    mark goes on the previous answer (the message before the newest user message): that prefix is the
    previous call's prompt plus its reply, so it is read back now and written once for the next turn,
    while the new user message (which may never be followed up) is not paid at the write rate."""
    n = len(messages)
    if n == 0:
        return None
    if messages[-1].role == "user" and not _starts_turn(messages[-1]):
        return n - 1
    index = n - 2
    while index >= 0 and messages[index].role != "assistant":
        index -= 1
    return index if index >= 0 else None
