"""Invariant 9 for reads on a user's behalf: which conversation a turn may read, and who could see what it reads.

A turn may read the conversation it is in, and in the assistant panel the channel the user is viewing.
Content read from a private conversation may only be shown where everyone who can see the answer can
see the source: in that conversation itself, or in the asking user's own DM with the bot (the assistant
panel) — and only if the user is a member, which Slack is asked (`conversations.members`, cached briefly).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import web_api

log = logging.getLogger(__name__)

INFO_TTL_S = 300.0  # a channel turning private is rare; five minutes of staleness is acceptable
MEMBERS_TTL_S = 60.0  # someone removed from a private channel loses access within a minute
MEMBER_PAGES = 10  # conversations.members pages (1,000 each) one check may read


class Refused(Exception):
    """A read the turn may not make; the message is what the user is told, with no content of the source."""


@dataclass(frozen=True)
class ConversationInfo:
    id: str
    name: str
    is_private: bool  # a private channel, a group DM or a DM: only its members can see it
    is_im: bool
    bot_is_member: bool

    @property
    def label(self) -> str:
        return "this DM" if self.is_im else f"#{self.name}"


def audience_refusal(source: ConversationInfo, *, destination_id: str, allowed: set[str],
                     asker_is_member: bool | None) -> str | None:
    """Why reading `source` for an answer posted in `destination_id` is refused, or None when it is fine.

    `allowed` holds what the turn may read; `asker_is_member` is None when not asked (public sources)."""
    private_to_asker = destination_id.startswith("D")  # the user's own DM with the bot (and its panel)
    if source.is_private and source.id != destination_id and not private_to_asker:
        return (f"<#{source.id}> is private: its messages cannot be shown here, where people outside it "
                "could read them.")
    if source.id not in allowed:
        return ("I can only read the conversation we are in" +
                (", or the channel you are viewing in the assistant panel." if private_to_asker else
                 ". Ask me in that channel (or in the assistant panel while viewing it)."))
    if source.is_private and asker_is_member is False:
        return f"<#{source.id}> is private and you are not a member of it, so I will not read it for you."
    return None


class ConversationAccess:
    """conversations.info and conversations.members answers, cached per process for a short while."""

    def __init__(self) -> None:
        self._info: dict[str, tuple[ConversationInfo, float]] = {}
        self._members: dict[str, tuple[frozenset[str], float]] = {}

    async def info(self, client: AsyncWebClient, channel_id: str) -> ConversationInfo:
        now = time.monotonic()
        cached = self._info.get(channel_id)
        if cached and cached[1] > now:
            return cached[0]
        try:
            data: dict[str, Any] = (await web_api.call(client, "conversations.info", patient=False,
                                                       channel=channel_id))["channel"]
        except web_api.FAILURES as exc:
            raise Refused(read_failure(channel_id, exc)) from None
        info = ConversationInfo(
            id=channel_id, name=str(data.get("name") or channel_id),
            is_private=bool(data.get("is_private") or data.get("is_group") or data.get("is_mpim") or data.get("is_im")),
            is_im=bool(data.get("is_im")), bot_is_member=bool(data.get("is_member", True)))
        self._remember(self._info, channel_id, info, now + INFO_TTL_S)
        return info

    async def is_member(self, client: AsyncWebClient, channel_id: str, user_id: str) -> bool:
        """Whether Slack lists `user_id` among the conversation's members (a failed check counts as no)."""
        now = time.monotonic()
        cached = self._members.get(channel_id)
        if cached and cached[1] > now:
            return user_id in cached[0]
        members: set[str] = set()
        cursor = ""
        try:
            for _ in range(MEMBER_PAGES):
                response = await web_api.call(client, "conversations.members", patient=False, channel=channel_id,
                                              limit=1000, **({"cursor": cursor} if cursor else {}))
                members.update(str(m) for m in response.get("members") or [])
                cursor = ((response.get("response_metadata") or {}).get("next_cursor") or "")
                if not cursor:
                    break
        except web_api.FAILURES as exc:
            log.warning("conversations.members %s failed (%s): treating %s as not a member", channel_id,
                        web_api.reason(exc), user_id)
            return False
        if cursor:  # more members than one check reads: judge from what was read, cache nothing
            return user_id in members
        self._remember(self._members, channel_id, frozenset(members), now + MEMBERS_TTL_S)
        return user_id in members

    async def check(self, client: AsyncWebClient, source_id: str, *, destination_id: str, allowed: set[str],
                    user_id: str) -> ConversationInfo:
        """The source's info when this read is allowed; Refused (with the sentence to say) when not."""
        source = await self.info(client, source_id)
        member = None
        if source.is_private and source.id != destination_id:
            member = await self.is_member(client, source_id, user_id)
        refusal = audience_refusal(source, destination_id=destination_id, allowed=allowed, asker_is_member=member)
        if refusal is not None:
            log.info("refused reading %s for %s in %s: %s", source_id, user_id, destination_id, refusal)
            raise Refused(refusal)
        return source

    @staticmethod
    def _remember(cache: dict[str, Any], key: str, value: Any, until: float) -> None:
        if len(cache) > 5_000:  # bounded: drop what has expired
            now = time.monotonic()
            for stale in [k for k, (_, t) in cache.items() if t <= now]:
                del cache[stale]
        cache[key] = (value, until)


def read_failure(channel_id: str, exc: BaseException) -> str:
    """One sentence for a failed read of a conversation, by Slack's error code."""
    code = web_api.reason(exc)
    if code == "not_in_channel":
        return f"I am not a member of <#{channel_id}>; invite me (/invite @threadbot) and ask again."
    if code == "channel_not_found":
        return "I cannot see that conversation: it is private and I am not in it, or it does not exist."
    if code == "missing_scope":
        return "This app lacks the Slack permission to read that conversation; an admin can add it."
    if code == "ratelimited":
        return "Slack is limiting how often I can read right now; try again in a minute."
    return f"Slack did not let me read that conversation ({code})."
