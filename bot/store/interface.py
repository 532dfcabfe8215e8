"""The store's interface: every method the bot calls, as coroutines, so any backend can implement it.

SQLite (bot/store/sqlite/) runs each call as a short synchronous transaction on the event-loop
thread; a network database awaits its driver. Either way, callers only ever `await store.x(...)`
from the event loop (architecture invariant: all store calls on the event-loop thread).
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, AsyncContextManager, Mapping, Protocol, Sequence

import numpy as np

from bot.messages import Message
from bot.store.records import (
    Admission,
    ApprovalResult,
    AssistantThread,
    ChannelSettings,
    Hit,
    KnowledgeDocument,
    NewChunk,
    NewDocument,
    NewTurn,
    OpenTurn,
    ScopePostings,
    ScopeVectors,
    SettingChange,
    SlackThread,
    StoredChunk,
    StoredMessage,
    ThreadMessage,
    UsageRow,
    UsageTotals,
    Vote,
)


class Store(Protocol):
    """Threads and their history, event claims, usage, limits, feedback, assistant threads, channel settings,
    knowledge."""

    # The deepest vector KNN knowledge_knn answers; deeper candidate lists come from knowledge/index.py.
    knn_max_k: int
    # True when knowledge_knn answers any scope size from an index in the database (pgvector HNSW):
    # knowledge/index.py then never loads a scope's vectors into memory.
    vector_index: bool
    # True when several processes (replicas) share this database: workspace-wide state such as the
    # chat.update budget must then live in it (bot/slack/edit_budget.py).
    shared_by_replicas: bool

    async def close(self) -> None: ...

    def thread_turn(self, channel_id: str, thread_ts: str, ts: str) -> AsyncContextManager[None]:
        """Held while the turn for message `ts` of a thread runs: turns of one thread run one at a
        time, in message order, across every process sharing the database (SQLite: one process,
        whose own per-thread lock already orders them)."""
        ...

    # --- events (bot/store/sqlite/events.py) --------------------------------------------------

    async def claim_event(self, *keys: str) -> bool:
        """Record these event keys; False if any was seen before (a retry or redelivery)."""
        ...

    async def prune_events(self, older_than_s: float = 7 * 86400) -> int: ...

    # --- turns: accepted work until it is done (bot/store/sqlite/turns.py) -------------------
    # The owner of an open turn is one running process (or replica) with a lease it renews; a turn
    # whose owner's lease has run out is adopted by whoever looks next (a restart, a live replica).

    # A database not shared_by_replicas (SQLite) has one process: at its start every other owner is gone.
    # A shared one relies on leases alone.

    async def claim_turn(self, *keys: str, turn: NewTurn, owner: str) -> int | None:
        """Claim the event keys and record the turn in ONE transaction (None: a key was claimed before)."""
        ...

    async def turn_shown(self, turn_id: int, *, reply_ts: str, shown_text: str, streaming: bool) -> None:
        """The reply's (last) message and what it shows; `streaming` once answer text is visible."""
        ...

    async def turn_details(self, turn_id: int, *, surface: str, details: dict[str, Any]) -> None:
        """Set the surface and merge `details` into the turn's (what the listener learnt after the claim)."""
        ...

    async def turn_question_saved(self, turn_id: int, *, conversation_id: int, question_id: int) -> None: ...

    async def finish_turn(self, turn_id: int, *, outcome: str) -> bool:
        """Mark the turn done; False if it was done already."""
        ...

    async def turn_outcome(self, turn_id: int) -> str | None: ...

    async def renew_owner(self, owner: str, *, lease_s: float) -> None:
        """The owner's heartbeat: it holds its open turns for `lease_s` more seconds."""
        ...

    async def release_owner(self, owner: str) -> None: ...

    async def adopt_turns(self, owner: str, *, everyone_else_gone: bool = False, limit: int = 10_000
                          ) -> list[OpenTurn]:
        """Atomically take over the open turns whose owner is gone, oldest first (one adopter each)."""
        ...

    async def prune_turns(self, older_than_s: float = 86400) -> int: ...

    # --- conversations ------------------------------------------------------------------------

    async def conversation_id(self, *, team_id: str, channel_id: str, thread_ts: str, user_id: str) -> int:
        """The id of the conversation for this thread, created on first use."""
        ...

    async def history(self, conversation_id: int) -> list[StoredMessage]: ...

    async def last_role(self, conversation_id: int) -> str | None: ...

    async def append_messages(self, conversation_id: int, messages: list[Message], *,
                              token_counts: list[int | None] | None = None, user_id: str | None = None,
                              slack_ts: str | None = None) -> list[int]:
        """Append messages atomically (a tool_use and its tool_result land together or not at all)."""
        ...

    # --- approvals (bot/store/sqlite/approvals.py) ---------------------------------------------
    # A question waiting for a user's Approve/Deny: the click may reach another replica than the waiter.

    async def open_approval(self, approval_id: str, *, user_id: str) -> None:
        """A new question that only `user_id` may decide."""
        ...

    async def decide_approval(self, approval_id: str, *, user_id: str, decision: str) -> ApprovalResult:
        """Record a click (`approved`/`denied`) if the question still waits and `user_id` may decide it."""
        ...

    async def approval_decision(self, approval_id: str) -> str | None:
        """The decision recorded so far (None: still waiting, or unknown)."""
        ...

    async def close_approval(self, approval_id: str, *, decision: str) -> str:
        """Stop waiting: record `decision` (`timeout`, `closed`) unless a click came first; the decision
        that stands. Also prunes long-decided questions."""
        ...

    # --- blobs (bot/store/sqlite/blobs.py) ---------------------------------------------------

    async def put_blob(self, sha256: str, media_type: str, data: bytes) -> None:
        """Keep bytes under their content address (images shared with a turn); idempotent."""
        ...

    async def get_blobs(self, sha256s: Sequence[str]) -> dict[str, bytes]:
        """The bytes for each known sha256; unknown ones are left out."""
        ...

    # --- workspace edit budgets (bot/store/sqlite/buckets.py) ---------------------------------

    async def take_edit_tokens(self, bucket: str, *, per_s: float, burst: float, keep: float,
                               most: int = 1) -> tuple[int, float]:
        """Refill the token bucket `bucket` (per_s a second, at most burst; a new one starts full), then take
        up to `most` tokens while leaving `keep`. Returns (taken, seconds until one more could be taken)."""
        ...

    async def give_edit_tokens(self, bucket: str, count: int, *, burst: float) -> None:
        """Put back tokens taken but not spent."""
        ...

    async def pause_edit_tokens(self, bucket: str, seconds: float) -> None:
        """Empty the bucket; nothing refills for `seconds` (Slack's Retry-After)."""
        ...

    # --- usage and limits ---------------------------------------------------------------------

    async def record_usage(self, row: UsageRow) -> int: ...

    async def usage_totals(self, *, since: float, until: float | None = None, user_id: str | None = None,
                           team_id: str | None = None) -> UsageTotals: ...

    async def usage_grouped(self, by: str, *, since: float, until: float | None = None,
                            user_id: str | None = None, limit: int | None = None
                            ) -> list[tuple[object, UsageTotals]]:
        """Totals per user_id, model, surface or UTC day (days since 1970-01-01), most cost first."""
        ...

    async def admit_request(self, *, user_id: str, team_id: str, now: float, rpm: int | None, day_start: float,
                            user_daily_usd: Decimal | None, daily_usd: Decimal | None,
                            window_s: float = 60.0) -> Admission:
        """Check every limit and, if all pass, record the request, atomically across all writers."""
        ...

    # --- feedback and assistant threads -------------------------------------------------------

    async def record_feedback(self, *, team_id: str, channel_id: str, message_ts: str, user_id: str, vote: Vote,
                              model: str | None = None, thread_ts: str | None = None,
                              now: float | None = None) -> bool: ...

    async def feedback_counts(self, *, since: float, user_id: str | None = None) -> tuple[int, int]: ...

    async def record_assistant_thread(self, *, channel_id: str, thread_ts: str, user_id: str | None = None,
                                      context_channel_id: str | None = None,
                                      context_team_id: str | None = None) -> None: ...

    async def assistant_thread(self, channel_id: str, thread_ts: str) -> AssistantThread | None: ...

    async def claim_assistant_title(self, channel_id: str, thread_ts: str) -> bool:
        """True exactly once per assistant thread."""
        ...

    # --- channel threads the bot is part of (bot/store/sqlite/threads.py) ------------------

    async def slack_thread(self, channel_id: str, thread_ts: str) -> SlackThread | None: ...

    async def mark_thread(self, channel_id: str, thread_ts: str, *, synced_ts: str | None = None,
                          seen_ts: str | None = None, answered: bool = False, shown_ts: Sequence[str] = ()) -> None:
        """Create the thread's row if needed; move `synced_ts`/`seen_ts` forward (never back); set `answered`;
        flag the messages `shown_ts` as given to the model."""
        ...

    async def record_thread_messages(self, channel_id: str, thread_ts: str, messages: Sequence[ThreadMessage], *,
                                     synced_ts: str | None = None, advance_synced: bool = False) -> bool:
        """Upsert messages of a thread the bot is part of (False, and nothing written, for any other thread)."""
        ...

    async def update_thread_message(self, channel_id: str, message: ThreadMessage) -> bool: ...

    async def delete_thread_message(self, channel_id: str, ts: str) -> bool: ...

    async def thread_messages(self, channel_id: str, thread_ts: str, *, after_ts: str | None = None,
                              limit: int = 2000) -> list[ThreadMessage]:
        """The newest `limit` recorded messages after `after_ts` not yet shown to the model, oldest first."""
        ...

    # --- per-channel settings (bot/store/sqlite/channel_settings.py) ---------------------------
    # Values are text, as the change log keeps them: prompt and model as given, tools as comma-separated
    # names, autoanswer 'on'; None is the bot's default (every tool, auto-answer off).

    async def channel_settings(self, channel_id: str) -> ChannelSettings | None:
        """The channel's settings; None when every field is the default."""
        ...

    async def all_channel_settings(self) -> list[ChannelSettings]:
        """Every channel with a setting that is not the default, by channel id."""
        ...

    async def change_channel_settings(self, channel_id: str, *, team_id: str, user_id: str,
                                      changes: Mapping[str, str | None], now: float | None = None
                                      ) -> list[SettingChange]:
        """Set these fields (None: back to the default) and log one change per field whose value really
        changed, atomically; returns those changes (empty when nothing changed). A channel whose fields
        are all default again has no row."""
        ...

    async def channel_setting_changes(self, channel_id: str, *, limit: int = 10) -> list[SettingChange]:
        """The channel's latest changes, newest first."""
        ...

    # --- knowledge: documents -----------------------------------------------------------------
    # A document is begun 'pending' (invisible), its chunks written in short batches, then published
    # 'ready' in one short transaction; knowledge/ingest.py drives the steps.

    async def knowledge_begin_document(self, document: NewDocument) -> int: ...

    async def knowledge_write_chunks(self, document_id: int, rows: Sequence[tuple[NewChunk, np.ndarray]]) -> int:
        """Write a prefix (at least one) of these rows in one short transaction; returns how many."""
        ...

    async def knowledge_publish_document(self, document_id: int, *, sha256: str, chunk_count: int) -> list[int]:
        """Make a pending document ready, retiring any ready one with the same sha256 in its scope;
        returns the retired ids (their rows still to purge)."""
        ...

    async def knowledge_purge_document(self, document_id: int) -> None:
        """Delete a document's rows from every index in short batches, then the document."""
        ...

    async def knowledge_sweep(self) -> int:
        """Purge documents a crashed writer left behind; returns how many."""
        ...

    async def knowledge_delete_document(self, document_id: int) -> bool: ...

    async def knowledge_set_scope(self, document_id: int, scope: str) -> bool: ...

    async def knowledge_replace_vectors(self, document_id: int, *, embedding_model: str, embedding_dim: int,
                                        vectors: dict[int, np.ndarray]) -> None: ...

    async def knowledge_document(self, document_id: int) -> KnowledgeDocument | None: ...

    async def knowledge_documents(self, scopes: list[str] | None = None) -> list[KnowledgeDocument]: ...

    async def knowledge_document_ids_outside(self, model: str, dim: int) -> list[int]: ...

    async def knowledge_chunks(self, chunk_ids: list[int]) -> dict[int, StoredChunk]: ...

    async def knowledge_document_chunks(self, document_id: int) -> list[StoredChunk]: ...

    # --- knowledge: search --------------------------------------------------------------------
    # Ranked candidates may include chunks of documents that are not ready yet; knowledge/index.py
    # drops them (knowledge_unready_scopes, knowledge_ready_chunks) before taking the top k.

    async def knowledge_knn(self, vector: np.ndarray, *, model: str, dim: int, scope: str, k: int) -> list[Hit]:
        """(chunk id, cosine similarity) of the k nearest chunks in one scope, best first (k <= knn_max_k)."""
        ...

    async def knowledge_bm25(self, match: str, *, scopes: list[str], limit: int,
                             weights: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> list[Hit]:
        """BM25 over (title, section, text) for an OR of quoted words, filtered by scope, best first."""
        ...

    async def knowledge_query_terms(self, words: list[str]) -> list[str] | None:
        """Each word as the lexical index's term, or None if one becomes several (a phrase)."""
        ...

    async def knowledge_scope_version(self, scope: str) -> int:
        """A counter that moves whenever the scope's searchable rows change."""
        ...

    async def knowledge_scope_size(self, scope: str) -> int: ...

    async def knowledge_scope_vectors(self, *, model: str, dim: int, scope: str) -> ScopeVectors: ...

    async def knowledge_scope_postings(self, scope: str) -> ScopePostings: ...

    async def knowledge_unready_scopes(self, scopes: list[str]) -> set[str]: ...

    async def knowledge_ready_chunks(self, chunk_ids: list[int]) -> set[int]: ...
