"""Who may read a knowledge document where (architecture invariant 7), and how each scope is named.

Scopes: `user:U…` (DM uploads, private to the uploader), `channel:C…` (visible in that channel),
`workspace` (admins share a document with everyone). This is the one place that knows which
conversations are private: Slack DMs (channel ids D…) and `threadbot console`'s own conversation.
"""
from __future__ import annotations

import re

from knowledge.errors import KnowledgeError

WORKSPACE = "workspace"
CONSOLE_USER = "console"  # the user id `threadbot console` speaks as
CONSOLE_CHANNEL = "console"  # the channel id of `threadbot console`'s conversation

# Slack ids are upper-case; `user:console` is the terminal console's own private scope.
_SCOPE = re.compile(r"^(workspace|channel:[A-Za-z0-9]+|user:[A-Za-z0-9]+)$")


def validate_scope(scope: str) -> str:
    if not _SCOPE.match(scope):
        raise KnowledgeError(f"{scope!r} is not a scope: use workspace, channel:C… or user:U….")
    return scope


def is_private_conversation(channel_id: str | None) -> bool:
    """A Slack DM (D…), or `threadbot console`'s conversation, which only its one user sees."""
    return channel_id is None or channel_id.startswith("D") or channel_id == CONSOLE_CHANNEL


def scopes_for(*, user_id: str, channel_id: str | None) -> list[str]:
    """The scopes a search by this user from this conversation may read.

    A DM sees workspace documents and the user's own uploads; a channel sees workspace documents and
    that channel's uploads. A user's private uploads are deliberately not searched from a channel:
    the answer is posted where everyone in the channel can read it.
    """
    if is_private_conversation(channel_id):
        return [WORKSPACE, f"user:{user_id}"]
    return [WORKSPACE, f"channel:{channel_id}"]


def scope_for_upload(*, user_id: str, channel_id: str | None) -> str:
    """Where a shared file lands: private to the uploader in a DM, else the channel it was shared in."""
    if is_private_conversation(channel_id):
        return f"user:{user_id}"
    return f"channel:{channel_id}"


def audience(scope: str) -> str:
    """Who can find a document of this scope, said to its uploader: "only you", "this channel", …"""
    if scope == WORKSPACE:
        return "everyone in the workspace"
    if scope.startswith("user:"):
        return "only you"
    return "this channel"
