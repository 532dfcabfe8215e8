"""The records that cross the store's interface, the same for every backend."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import numpy as np

from bot.messages import Message

Vote = Literal["up", "down"]


@dataclass(frozen=True)
class StoredMessage:
    id: int
    message: Message
    token_count: int | None


@dataclass(frozen=True)
class UsageRow:
    team_id: str
    user_id: str
    channel_id: str
    thread_ts: str | None
    surface: str  # "mention" | "autoanswer" | "dm" | "assistant" | "console" | "command" | "ingest"
    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    cost_usd: Decimal
    latency_ms: int
    stop_reason: str | None
    error: str | None = None
    created_at: float | None = None


@dataclass(frozen=True)
class UsageTotals:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: Decimal = Decimal(0)

    @property
    def total_tokens(self) -> int:
        return (self.input_tokens + self.output_tokens + self.cache_creation_input_tokens
                + self.cache_read_input_tokens)


@dataclass(frozen=True)
class Admission:
    """The outcome of one check: admitted (with the request row id) or which limit refused it."""

    admitted: bool
    refused_by: Literal["rpm", "user_daily", "daily"] | None = None
    request_id: int | None = None
    # rpm: when the oldest request in the window leaves it (a slot frees).
    retry_at: float | None = None
    # daily limits: spend so far in the UTC day.
    spent_usd: Decimal | None = None


@dataclass(frozen=True)
class AssistantThread:
    """A thread in Slack's assistant panel, and the channel the user was looking at (if any)."""

    channel_id: str
    thread_ts: str
    user_id: str | None
    context_channel_id: str | None
    context_team_id: str | None


@dataclass(frozen=True)
class KnowledgeDocument:
    id: int
    scope: str
    title: str
    mimetype: str | None
    kind: str
    sha256: str
    size_bytes: int
    uploaded_by: str
    slack_file_id: str | None
    permalink: str | None
    embedding_model: str
    embedding_dim: int
    chunk_count: int
    created_at: float


@dataclass(frozen=True)
class NewDocument:
    """What is known of a document before its chunks are written."""

    scope: str
    title: str
    mimetype: str | None
    kind: str
    size_bytes: int
    uploaded_by: str
    slack_file_id: str | None
    permalink: str | None
    embedding_model: str
    embedding_dim: int


@dataclass(frozen=True)
class NewChunk:
    ordinal: int
    text: str
    section: str | None = None
    page: int | None = None


@dataclass(frozen=True)
class StoredChunk:
    id: int
    document_id: int
    ordinal: int
    section: str | None
    page: int | None
    text: str
    title: str
    scope: str
    permalink: str | None


@dataclass(frozen=True)
class ScopeVectors:
    """Every vector of one scope in one embedding space, read in one snapshot with the scope's version."""

    version: int
    ids: np.ndarray  # int64 chunk ids
    vectors: np.ndarray  # float32, one row per id


@dataclass(frozen=True)
class ScopePostings:
    """One scope's lexical index terms as the backend tokenized them, read in one snapshot.

    Term i owns the next counts[i] codes, each `chunk_id * 4 + column` (0 title, 1 section, 2 text),
    one per token occurrence; `ids` are the scope's chunk ids, ascending."""

    version: int
    ids: np.ndarray
    terms: list[str]
    counts: np.ndarray
    codes: np.ndarray


@dataclass(frozen=True)
class ThreadMessage:
    """One message in a thread as recorded from Slack (an event or `conversations.replies`)."""

    ts: str
    user_id: str  # author; for an app's message its bot user, or "" when Slack gave none
    text: str
    file_names: tuple[str, ...] = ()
    bot_id: str | None = None  # set when an app posted it
    tokens: int | None = None  # tokens of `text`, counted once when recorded (None: count when needed)


@dataclass(frozen=True)
class SlackThread:
    channel_id: str
    thread_ts: str
    synced_ts: str | None  # every message up to here is recorded
    seen_ts: str | None  # the bot has shown the thread up to here (its last question)
    answered: bool  # the bot has answered in it: replies are follow-ups


Hit = tuple[int, float]  # (chunk id, score; higher is better)


SettingField = Literal["prompt", "model", "tools", "autoanswer"]
SETTING_FIELDS: tuple[SettingField, ...] = ("prompt", "model", "tools", "autoanswer")


@dataclass(frozen=True)
class ChannelSettings:
    """How the bot behaves in one channel (/threadbot). None means the bot's default for that field."""

    channel_id: str
    prompt: str | None = None
    model: str | None = None
    tools: tuple[str, ...] | None = None  # None: every tool the bot has
    autoanswer: bool = False
    updated_by: str | None = None
    updated_at: float | None = None

    @property
    def is_default(self) -> bool:
        return self.prompt is None and self.model is None and self.tools is None and not self.autoanswer


@dataclass(frozen=True)
class SettingChange:
    """One recorded change of one channel setting: who, when, the old and the new value (None: default)."""

    channel_id: str
    field: SettingField
    old: str | None
    new: str | None
    user_id: str
    changed_at: float


@dataclass(frozen=True)
class NewTurn:
    """Work the bot accepted and must finish: what to answer (or do), where, for whom.

    `kind` is "answer" for a question; other long-running work ("upload", "approval", "summary") is
    recorded the same way, so a restart can report or close what a dead process left unfinished.
    """

    kind: str
    team_id: str
    channel_id: str
    thread_ts: str
    ts: str  # the user's message (or the work's own anchor)
    user_id: str
    surface: str = ""
    text: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # JSON: what the surface needs to resume it
    reply_ts: str | None = None  # a message already posted for it (an upload's progress line)


@dataclass(frozen=True)
class OpenTurn:
    """A recorded turn that is not done, as recovery reads it."""

    id: int
    kind: str
    owner: str
    team_id: str
    channel_id: str
    thread_ts: str
    ts: str
    user_id: str
    surface: str
    text: str
    details: dict[str, Any]
    accepted_at: float
    reply_ts: str | None  # the reply's message (the last part, when it overflowed), once posted
    shown_text: str | None  # what that message shows now (the bot's own last edit)
    streaming: bool  # answer text was shown: it can no longer be answered afresh
    conversation_id: int | None
    question_id: int | None  # the stored user message, once persisted


@dataclass(frozen=True)
class ApprovalResult:
    """What recording a click did: `decided`, `not_yours` (another user clicked) or `gone` (decided already,
    timed out, or unknown); `owner` is the user who may decide (None when the question is unknown)."""

    result: Literal["decided", "not_yours", "gone"]
    owner: str | None
