"""The provider-neutral conversation and streaming types every provider speaks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class TextBlock:
    text: str
    type: Literal["text"] = "text"


@dataclass(frozen=True)
class ToolUseBlock:
    id: str
    name: str
    input: dict[str, Any]
    type: Literal["tool_use"] = "tool_use"


@dataclass(frozen=True)
class ToolResultBlock:
    tool_use_id: str
    content: str
    is_error: bool = False
    type: Literal["tool_result"] = "tool_result"


ContentBlock = Union[TextBlock, ToolUseBlock, ToolResultBlock]


@dataclass
class Message:
    """One stored turn, in the Messages API shape (the canonical form in history)."""

    role: Role
    content: list[ContentBlock]

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    @property
    def tool_uses(self) -> list[ToolUseBlock]:
        return [b for b in self.content if isinstance(b, ToolUseBlock)]

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "content": [block_to_json(b) for b in self.content]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Message":
        return cls(role=data["role"], content=[block_from_json(b) for b in data["content"]])


def block_to_json(block: ContentBlock) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    return {
        "type": "tool_result",
        "tool_use_id": block.tool_use_id,
        "content": block.content,
        "is_error": block.is_error,
    }


def block_from_json(data: dict[str, Any]) -> ContentBlock:
    kind = data["type"]
    if kind == "text":
        return TextBlock(text=data["text"])
    if kind == "tool_use":
        return ToolUseBlock(id=data["id"], name=data["name"], input=data.get("input") or {})
    if kind == "tool_result":
        return ToolResultBlock(
            tool_use_id=data["tool_use_id"],
            content=data.get("content", ""),
            is_error=bool(data.get("is_error", False)),
        )
    raise ValueError(f"unknown content block type {kind!r}")


@dataclass
class Usage:
    """Token counts as the provider reported them for one call."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
        )


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model sees it: name, description, JSON schema of its input."""

    name: str
    description: str
    input_schema: dict[str, Any]


# --- stream events -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolUseStarted:
    """The model began a tool_use block (its input is still streaming)."""

    id: str
    name: str


@dataclass
class MessageDone:
    """The call finished: the assembled assistant message, its usage and why it stopped."""

    message: Message
    usage: Usage
    stop_reason: str  # "end_turn" | "tool_use" | "max_tokens" | "stop_sequence" | "refusal" | …
    model: str


StreamEvent = Union[TextDelta, ToolUseStarted, MessageDone]


@dataclass
class ModelRequest:
    """Everything one model call needs; providers translate it to their wire format."""

    model: str
    system: str
    messages: list[Message]
    max_tokens: int
    tools: list[ToolSpec] = field(default_factory=list)
    # None = model decides; a tool name forces that tool (used by structured extraction).
    tool_choice: str | None = None
    # Index into messages after which a cache breakpoint goes (prompt caching); None = no history marker.
    cache_history_at: int | None = None
    # Our token count of system + tools + messages (before the safety factor), carried with the request so
    # the meter can calibrate the estimate against the reported input; None when nobody estimated it.
    estimated_input_tokens: int | None = None
