"""The provider-neutral conversation and streaming types every provider speaks."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal, Union

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
class ImageBlock:
    """An image shared with a turn. History keeps its content address (`sha256`), never its bytes or a Slack
    URL; `data` is attached from the store when a request is built (None: the bytes are not at hand)."""

    name: str
    media_type: str  # image/png | image/jpeg | image/gif | image/webp
    sha256: str
    width: int
    height: int
    data: bytes | None = field(default=None, repr=False, compare=False)
    type: Literal["image"] = "image"

    @property
    def placeholder(self) -> str:
        """What the model reads instead when the image cannot be sent (no vision, no room, bytes gone)."""
        return f"[image: {self.name}]"

    def as_text(self) -> "TextBlock":
        """The placeholder as a block of its own line (text blocks of a message are joined as they are)."""
        return TextBlock(self.placeholder + "\n")


@dataclass(frozen=True)
class ToolResultBlock:
    """A tool's answer: text, and the images it returned (an MCP tool's screenshot), kept like a turn's."""

    tool_use_id: str
    content: str
    is_error: bool = False
    type: Literal["tool_result"] = "tool_result"
    images: tuple[ImageBlock, ...] = ()


@dataclass(frozen=True)
class DocumentBlock:
    """A document shared with a question, given whole for that turn: the PDF itself where the provider reads
    PDFs (`data`), else its parsed `text`. Like an image, history keeps the content address only."""

    name: str
    media_type: str  # application/pdf, text/plain, …
    sha256: str
    text: str
    data: bytes | None = field(default=None, repr=False, compare=False)
    type: Literal["document"] = "document"


ContentBlock = Union[TextBlock, ToolUseBlock, ToolResultBlock, ImageBlock, DocumentBlock]


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

    @property
    def images(self) -> list[ImageBlock]:
        """Every image of the message, also those a tool returned inside its tool_result."""
        found: list[ImageBlock] = []
        for block in self.content:
            if isinstance(block, ImageBlock):
                found.append(block)
            elif isinstance(block, ToolResultBlock):
                found.extend(block.images)
        return found

    def map_images(self, change: "Callable[[ImageBlock], ImageBlock | TextBlock]") -> "Message":
        """The message with each image (also inside tool results) replaced by `change(image)`: another image
        (its bytes attached), or text standing in for it (inside a tool result, added to its content)."""
        if not self.images:
            return self
        content: list[ContentBlock] = []
        for block in self.content:
            if isinstance(block, ImageBlock):
                content.append(change(block))
            elif isinstance(block, ToolResultBlock) and block.images:
                kept: list[ImageBlock] = []
                notes: list[str] = []
                for image in block.images:
                    changed = change(image)
                    if isinstance(changed, ImageBlock):
                        kept.append(changed)
                    else:
                        notes.append(changed.text.strip())
                text = "\n".join([block.content, *notes]) if notes else block.content
                content.append(replace(block, content=text, images=tuple(kept)))
            else:
                content.append(block)
        return Message(self.role, content)

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
    if isinstance(block, ImageBlock):
        return {"type": "image", "name": block.name, "media_type": block.media_type, "sha256": block.sha256,
                "width": block.width, "height": block.height}
    if isinstance(block, DocumentBlock):
        return {"type": "document", "name": block.name, "media_type": block.media_type, "sha256": block.sha256,
                "text": block.text}
    out: dict[str, Any] = {
        "type": "tool_result",
        "tool_use_id": block.tool_use_id,
        "content": block.content,
        "is_error": block.is_error,
    }
    if block.images:
        out["images"] = [block_to_json(image) for image in block.images]
    return out


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
            images=tuple(_image_from_json(i) for i in data.get("images") or ()),
        )
    if kind == "image":
        return _image_from_json(data)
    if kind == "document":
        return DocumentBlock(name=data["name"], media_type=data["media_type"], sha256=data["sha256"],
                             text=data.get("text", ""))
    raise ValueError(f"unknown content block type {kind!r}")


def _image_from_json(data: dict[str, Any]) -> ImageBlock:
    return ImageBlock(name=data["name"], media_type=data["media_type"], sha256=data["sha256"],
                      width=int(data["width"]), height=int(data["height"]))


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
