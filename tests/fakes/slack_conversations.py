"""The reading side of the Slack fake: channels, membership, scopes, conversations.replies/history/members/info.

Behaves as Slack does toward a bot token:
- `conversations.replies` returns the thread parent first on every page, even when `oldest` excludes it,
  then replies oldest first; `conversations.history` returns top-level messages (and thread broadcasts)
  newest first. Both page with `limit`, `has_more` and an opaque `response_metadata.next_cursor`, and
  filter by `oldest`/`latest` (exclusive unless `inclusive`).
- A private channel the bot is not in does not exist for it (`channel_not_found`); a public one it is not
  in answers `not_in_channel`; a token without the conversation type's scope gets `missing_scope` with
  `needed` and `provided`.
- A deleted parent that has replies stays as a `tombstone`; other deleted messages are gone.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from tests.fakes.slack import FakeMessage

# What a bot token installed from the project's manifest holds; tests remove scopes to see the errors.
BOT_SCOPES = frozenset({
    "app_mentions:read", "assistant:write", "channels:history", "channels:read", "chat:write", "commands",
    "files:read", "groups:history", "groups:read", "im:history", "im:read", "mpim:history", "mpim:read",
    "reactions:write", "users:read",
})
REPLIES_MAX_LIMIT = 1000
HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT = 100, 999
MEMBERS_DEFAULT_LIMIT, MEMBERS_MAX_LIMIT = 100, 1000


class SlackApiFailure(Exception):
    """A Web API error answered as Slack does: HTTP 200 with ok=false."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class FakeChannel:
    id: str
    name: str
    is_private: bool = False
    is_im: bool = False
    is_mpim: bool = False
    members: list[str] = field(default_factory=list)
    created: int = 1_600_000_000

    @property
    def scope_prefix(self) -> str:
        if self.is_im:
            return "im"
        if self.is_mpim:
            return "mpim"
        return "groups" if self.is_private else "channels"

    def to_api(self, bot_user_id: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "name": self.name, "created": self.created, "is_channel": not (self.is_im or self.is_mpim)
            and not self.is_private, "is_group": self.is_private and not self.is_mpim, "is_im": self.is_im,
            "is_mpim": self.is_mpim, "is_private": self.is_private or self.is_im or self.is_mpim,
            "is_archived": False, "is_member": bot_user_id in self.members,
        }
        if not self.is_im:
            data["num_members"] = len(self.members)
        return data


def encode_cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts}".encode()).decode()


def decode_cursor(cursor: str) -> Decimal:
    try:
        raw = base64.b64decode(cursor.encode(), validate=True).decode()
        if not raw.startswith("next_ts:"):
            raise ValueError(raw)
        return Decimal(raw[len("next_ts:"):])
    except (ValueError, InvalidOperation, UnicodeDecodeError):
        raise SlackApiFailure("invalid_cursor") from None


def ts_key(ts: str) -> Decimal:
    return Decimal(ts)


class ConversationsMixin:
    """Mixed into FakeSlack; uses its `_messages`, `users`, `team_id`, `bot_user_id`."""

    _messages: dict[tuple[str, str], FakeMessage]
    users: dict[str, dict[str, Any]]
    team_id: str
    bot_user_id: str

    def _init_conversations(self) -> None:
        self.channels: dict[str, FakeChannel] = {}
        self.scopes: set[str] = set(BOT_SCOPES)

    def _conversation_handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "conversations.replies": self._conversations_replies,
            "conversations.history": self._conversations_history,
            "conversations.members": self._conversations_members,
            "conversations.info": self._conversations_info,
            "users.info": self._users_info,
        }

    # ---------------------------------------------------------------- test controls

    def add_channel(self, channel_id: str, *, name: str | None = None, is_private: bool = False,
                    is_mpim: bool = False, is_im: bool = False, members: list[str] | None = None,
                    bot_is_member: bool = True) -> FakeChannel:
        """Register a conversation; the bot is a member unless `bot_is_member=False`."""
        people = list(members or [])
        if bot_is_member and self.bot_user_id not in people:
            people.append(self.bot_user_id)
        channel = FakeChannel(channel_id, name or channel_id.lower(), is_private=is_private, is_im=is_im,
                              is_mpim=is_mpim, members=people)
        self.channels[channel_id] = channel
        return channel

    # ---------------------------------------------------------------- handlers

    def _readable(self, p: dict[str, Any], *, verb: str) -> FakeChannel:
        channel = self.channels.get(p.get("channel") or "")
        if channel is None or (channel.scope_prefix in ("groups", "mpim", "im")
                               and self.bot_user_id not in channel.members):
            raise SlackApiFailure("channel_not_found")
        needed = f"{channel.scope_prefix}:{verb}"
        if needed not in self.scopes:
            raise SlackApiFailure("missing_scope", needed=needed, provided=",".join(sorted(self.scopes)))
        return channel

    def _conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._readable(p, verb="history")
        if self.bot_user_id not in channel.members:
            raise SlackApiFailure("not_in_channel")
        if not p.get("ts"):
            raise SlackApiFailure("invalid_arguments",
                           response_metadata={"messages": ["[ERROR] missing required field: ts"]})
        target = self._messages.get((channel.id, str(p["ts"])))
        if target is None:
            raise SlackApiFailure("thread_not_found")
        root_ts = target.thread_ts or target.ts
        parent = self._messages.get((channel.id, root_ts))
        replies = sorted((m for (ch, _), m in list(self._messages.items())
                          if ch == channel.id and m.thread_ts == root_ts and m.ts != root_ts and not m.deleted),
                         key=lambda m: ts_key(m.ts))
        if target.deleted and (target.ts != root_ts or not replies):
            raise SlackApiFailure("thread_not_found")
        limit = _limit(p, default=REPLIES_MAX_LIMIT, maximum=REPLIES_MAX_LIMIT)
        in_range = _range(p)
        window = [m for m in replies if in_range(ts_key(m.ts))]
        if p.get("cursor"):
            start = decode_cursor(str(p["cursor"]))
            window = [m for m in window if ts_key(m.ts) >= start]
        page, rest = window[:limit], window[limit:]
        head: list[dict[str, Any]] = []
        if parent is not None and (not parent.deleted or replies):
            head = [self._message_api(parent, replies)]
        body: dict[str, Any] = {"messages": head + [self._message_api(m, []) for m in page],
                                "has_more": bool(rest)}
        body["response_metadata"] = {"next_cursor": encode_cursor(rest[0].ts) if rest else ""}
        return body

    def _conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._readable(p, verb="history")
        if self.bot_user_id not in channel.members:
            raise SlackApiFailure("not_in_channel")
        limit = _limit(p, default=HISTORY_DEFAULT_LIMIT, maximum=HISTORY_MAX_LIMIT)
        in_range = _range(p)
        everything = [m for (ch, _), m in list(self._messages.items()) if ch == channel.id]
        replies_of: dict[str, list[FakeMessage]] = {}
        for m in everything:
            if m.thread_ts and m.thread_ts != m.ts and not m.deleted:
                replies_of.setdefault(m.thread_ts, []).append(m)
        top = [m for m in everything if (not m.thread_ts or m.thread_ts == m.ts or m.subtype == "thread_broadcast")
               and (not m.deleted or replies_of.get(m.ts)) and in_range(ts_key(m.ts))]
        top.sort(key=lambda m: ts_key(m.ts), reverse=True)
        if p.get("cursor"):
            start = decode_cursor(str(p["cursor"]))
            top = [m for m in top if ts_key(m.ts) <= start]
        page, rest = top[:limit], top[limit:]
        return {"messages": [self._message_api(m, sorted(replies_of.get(m.ts, []), key=lambda r: ts_key(r.ts)))
                             for m in page],
                "has_more": bool(rest), "pin_count": 0,
                "response_metadata": {"next_cursor": encode_cursor(rest[0].ts) if rest else ""}}

    def _conversations_members(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._readable(p, verb="read")
        limit = _limit(p, default=MEMBERS_DEFAULT_LIMIT, maximum=MEMBERS_MAX_LIMIT)
        members = sorted(channel.members)
        start = 0
        if p.get("cursor"):
            cursor = str(p["cursor"])
            try:
                raw = base64.b64decode(cursor.encode(), validate=True).decode()
                start = members.index(raw.removeprefix("user:"))
            except ValueError:
                raise SlackApiFailure("invalid_cursor") from None
        page, rest = members[start:start + limit], members[start + limit:]
        cursor = base64.b64encode(f"user:{rest[0]}".encode()).decode() if rest else ""
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    def _conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._readable(p, verb="read")
        return {"channel": channel.to_api(self.bot_user_id)}

    def _users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        if "users:read" not in self.scopes:
            raise SlackApiFailure("missing_scope", needed="users:read", provided=",".join(sorted(self.scopes)))
        user = self.users.get(p.get("user") or "")
        if user is None:
            raise SlackApiFailure("user_not_found")
        return {"user": user}

    def _message_api(self, m: FakeMessage, replies: list[FakeMessage]) -> dict[str, Any]:
        if m.deleted:
            # What Slack leaves of a deleted parent so its thread still hangs somewhere.
            data: dict[str, Any] = {"type": "message", "subtype": "tombstone", "text": "This message was deleted.",
                                    "user": "USLACKBOT", "hidden": True, "ts": m.ts, "thread_ts": m.ts}
        else:
            data = m.to_api(self.team_id)
        if replies:
            data["thread_ts"] = m.ts
            data["reply_count"] = len(replies)
            data["reply_users"] = sorted({r.user for r in replies})
            data["reply_users_count"] = len(data["reply_users"])
            data["latest_reply"] = replies[-1].ts
        return data


def _limit(p: dict[str, Any], *, default: int, maximum: int) -> int:
    raw = p.get("limit")
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise SlackApiFailure("invalid_limit") from None
    if value < 1:
        raise SlackApiFailure("invalid_limit")
    return min(value, maximum)


def _range(p: dict[str, Any]) -> Callable[[Decimal], bool]:
    try:
        oldest = Decimal(str(p.get("oldest") or "0"))
        latest = Decimal(str(p["latest"])) if p.get("latest") else None
    except InvalidOperation:
        raise SlackApiFailure("invalid_ts_oldest" if p.get("oldest") else "invalid_ts_latest") from None
    inclusive = str(p.get("inclusive", "")).lower() in ("1", "true")

    def check(ts: Decimal) -> bool:
        after = ts >= oldest if inclusive else ts > oldest
        before = latest is None or (ts <= latest if inclusive else ts < latest)
        return after and before

    return check
