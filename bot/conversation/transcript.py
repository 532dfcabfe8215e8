"""A turn's working history: every message with its token estimate, stored the moment it is complete."""
from __future__ import annotations

from dataclasses import dataclass

from bot.conversation.context_window import cache_point, trim_history
from bot.llm.tokens import count_message_tokens
from bot.messages import ImageBlock, Message
from bot.store import Store


@dataclass(frozen=True)
class Counted:
    """A message and our token estimate of it: counted once when it was written; None for rows stored
    without one, which the context window counts when it needs them."""

    message: Message
    token_count: int | None


@dataclass(frozen=True)
class Window:
    """What one model call sends: the newest history that fits, where its cache breakpoint goes, and our
    estimate of the whole prompt (system + tools + these messages, before the safety factor)."""

    messages: list[Message]
    cache_history_at: int | None
    estimated_input_tokens: int


class Transcript:
    """The thread's history as the agent works through a turn. `record` stores new messages in one
    transaction (a tool_use with its tool_result), so the stored history stays a valid request even if
    the turn dies half-way (invariant 3)."""

    def __init__(self, store: Store, conversation_id: int, entries: list[Counted], *, vision: bool = True):
        self.store = store
        self.conversation_id = conversation_id
        self.entries = list(entries)
        # A model without vision reads a tool's images as their `[image: name]` text; the store keeps them.
        self.vision = vision

    @property
    def messages(self) -> list[Message]:
        return [entry.message for entry in self.entries]

    async def record(self, messages: list[Message]) -> None:
        counted = [Counted(m, count_message_tokens(m)) for m in messages]
        await self.store.append_messages(self.conversation_id, messages, token_counts=[c.token_count for c in counted])
        if not self.vision:
            counted = [Counted(c.message.map_images(ImageBlock.as_text), None) if c.message.images else c
                       for c in counted]
        self.entries += counted

    def window(self, *, model: str, max_tokens: int, fixed_tokens: int) -> Window:
        """The request-sized part of the history; `fixed_tokens` is what system prompt and tools take."""
        trimmed = trim_history(self.entries, model=model, max_tokens=max_tokens,
                               system_tokens=fixed_tokens, tools_tokens=0)
        return Window(trimmed.messages, cache_point(trimmed.messages), fixed_tokens + trimmed.estimated_tokens)
