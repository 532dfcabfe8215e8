"""Fitting thread history into the model's context window, and where the rolling cache point goes.

The window and the safety factor our token estimate is multiplied by come from the model catalog
(bot/llm/catalog.py); a fixed SAFETY_MARGIN of tokens is kept free on top of `max_tokens`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from bot.errors import MessageTooLarge, PromptTooLong
from bot.llm import catalog
from bot.llm.tokens import count_message_tokens
from bot.messages import ImageBlock, Message, ToolResultBlock

SAFETY_MARGIN = 1024
# What one request may carry in images, whatever the tokens say: Anthropic refuses more than 100 images and
# PDF pages together and requests over 32 MB; the newest turn may still bring a document, so the history
# leaves room for it. Older images beyond these become their names first.
MAX_REQUEST_IMAGES = 50
MAX_REQUEST_IMAGE_BYTES = 16 * 1024 * 1024


class CountedMessage(Protocol):
    """A message with its token estimate, if known (a stored row, or one the current turn produced)."""

    @property
    def message(self) -> Message: ...

    @property
    def token_count(self) -> int | None: ...


def input_budget(*, model: str, max_tokens: int) -> int:
    """Estimated (pre-factor) tokens the prompt may have: window - max_tokens - margin, / factor."""
    room = catalog.context_window(model) - max_tokens - SAFETY_MARGIN
    return max(0, int(room / catalog.safety_factor(model)))


@dataclass(frozen=True)
class Trimmed:
    messages: list[Message]
    estimated_tokens: int  # history only, before the safety factor
    dropped: int  # stored messages left out


def fit_history(
    messages: Sequence[CountedMessage | Message],
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
    messages: Sequence[CountedMessage | Message],
    *,
    model: str,
    max_tokens: int,
    system_tokens: int,
    tools_tokens: int,
    step_fraction: float = 0.25,
) -> Trimmed:
    """Drop the oldest turns until the rest fits in catalog.context_window(model) - max_tokens - margin.

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
    messages = images_give_way(messages, budget)

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


def images_give_way(messages: Sequence[CountedMessage | Message], budget: int) -> Sequence[CountedMessage | Message]:
    """Older images become their `[image: name]` text, oldest first, until the thread fits — in tokens, and
    in what one request may carry (MAX_REQUEST_IMAGES, MAX_REQUEST_IMAGE_BYTES) — before any turn is dropped.
    The newest turn keeps its images: the question is about them."""
    if not any(_message_of(m).images for m in messages):
        return messages
    counted = [_message_and_count(m) for m in messages]
    total = sum(count for _, count in counted)
    images = sum(len(m.images) for m, _ in counted)
    image_bytes = sum(len(i.data or b"") for m, _ in counted for i in m.images)
    newest = max((i for i, (m, _) in enumerate(counted) if m.role == "user" and _starts_turn(m)), default=0)
    out: list[CountedMessage | Message] = list(messages)
    for i, (message, count) in enumerate(counted[:newest]):
        if total <= budget and images <= MAX_REQUEST_IMAGES and image_bytes <= MAX_REQUEST_IMAGE_BYTES:
            break
        if message.images:
            text_only = message.map_images(ImageBlock.as_text)
            total -= count - count_message_tokens(text_only)
            images -= len(message.images)
            image_bytes -= sum(len(image.data or b"") for image in message.images)
            out[i] = text_only
    return out


def _message_of(item: CountedMessage | Message) -> Message:
    return item if isinstance(item, Message) else item.message


def _message_and_count(item: CountedMessage | Message) -> tuple[Message, int]:
    if isinstance(item, Message):
        return item, count_message_tokens(item)
    count = item.token_count
    return item.message, count if count is not None else count_message_tokens(item.message)


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
