"""/knowledge in Slack: list, search, delete and (admins) share documents, answered as mrkdwn text."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from bot.config import Settings
from bot.slack.mrkdwn import escape_mrkdwn, slack_link
from bot.store import Store
from knowledge.embed import make_embedder
from knowledge.errors import DocumentNotFound
from knowledge.ingest import delete_document, list_documents, set_scope
from knowledge.search import WORKSPACE, SearchHit, scopes_for, search_async

HELP = (
    "*/knowledge* — the documents I answer from. Share a file with me (in a DM it stays private to you; "
    "in a channel, mention me with the file attached and it is visible in that channel).\n"
    "• `/knowledge list` — documents visible here (admins: `/knowledge list all`)\n"
    "• `/knowledge search <query>` — what my document search finds\n"
    "• `/knowledge delete <id>` — remove one of your documents (admins: any)\n"
    "• `/knowledge share <id>` — admins: make a document visible in the whole workspace"
)
SNIPPET_CHARS = 200
SEARCH_K = 5


async def handle_knowledge_command(store: Store, settings: Settings, *, user_id: str, channel_id: str,
                                   text: str) -> str:
    """The ephemeral answer to `/knowledge <text>` from this user in this conversation."""
    verb, _, rest = text.strip().partition(" ")
    verb, rest = verb.lower(), rest.strip()
    is_admin = user_id in settings.admins
    visible = scopes_for(user_id=user_id, channel_id=channel_id)
    if verb in ("", "list"):
        if rest.lower() == "all" and is_admin:
            return await asyncio.to_thread(list_text, store, None)
        return await asyncio.to_thread(list_text, store, visible)
    if verb == "search":
        if not rest:
            return "What should I search for? Try `/knowledge search vacation policy`."
        hits = await search_async(store, make_embedder(settings), rest, scopes=visible, k=SEARCH_K)
        return search_text(rest, hits)
    if verb in ("delete", "share"):
        number = rest.removeprefix("#")
        if not number.isdigit():
            return f"Give me a document id, e.g. `/knowledge {verb} 12` (see `/knowledge list`)."
        document = store.knowledge_document(int(number))
        own = document is not None and document.uploaded_by == user_id
        # Someone else's document in a scope this user can't read is reported as absent, so ids
        # don't reveal what others shared privately.
        if document is None or not (own or is_admin or document.scope in visible):
            return f"There is no document {number} here."
        title = escape_mrkdwn(document.title)
        if verb == "delete":
            if not (own or is_admin):
                return f"Only the person who shared *{title}* or an admin can delete it."
            try:
                await asyncio.to_thread(delete_document, store, document.id)
            except DocumentNotFound:
                return f"There is no document {number} here."
            return f"Deleted *{title}* (document {document.id}) from every index."
        if not is_admin:
            return "Only admins can make a document visible to the whole workspace."
        if document.scope == WORKSPACE:
            return f"*{title}* (document {document.id}) is already visible in the whole workspace."
        await asyncio.to_thread(set_scope, store, document.id, WORKSPACE)
        return f"*{title}* (document {document.id}) is now visible in the whole workspace."
    if verb == "help":
        return HELP
    return f"I don't know `{escape_mrkdwn(verb)}`.\n{HELP}"


def where(scope: str) -> str:
    if scope == WORKSPACE:
        return "workspace"
    if scope.startswith("user:"):
        return f"private to <@{scope.removeprefix('user:')}>"
    return f"<#{scope.removeprefix('channel:')}>"


def list_text(store: Store, scopes: list[str] | None) -> str:
    """Documents in these scopes (None: all of them, for admins), newest first."""
    documents = list_documents(store, scopes)
    if not documents:
        return "No documents are visible here yet. Share a file with me to add one."
    here = "in the knowledge base" if scopes is None else "visible here"
    lines = [f"*{len(documents)} document{'s' if len(documents) != 1 else ''} {here}:*"]
    for d in documents:
        added = datetime.fromtimestamp(d.created_at, timezone.utc).strftime("%Y-%m-%d")
        title = escape_mrkdwn(d.title)
        if d.permalink:
            title = slack_link(d.permalink, title)
        chunks = f"{d.chunk_count:,} chunk{'s' if d.chunk_count != 1 else ''}"
        lines.append(f"• `{d.id}` {title} — {chunks}, {where(d.scope)}, "
                     f"added {added} by <@{d.uploaded_by}>")
    return "\n".join(lines)


def search_text(query: str, hits: list[SearchHit]) -> str:
    if not hits:
        return f"Nothing visible here matched _{escape_mrkdwn(query)}_."
    lines = [f"*Top {len(hits)} for* _{escape_mrkdwn(query)}_:"]
    for number, hit in enumerate(hits, start=1):
        title = escape_mrkdwn(hit.title)
        if hit.permalink:
            title = slack_link(hit.permalink, title)
        location = f", {escape_mrkdwn(hit.location)}" if hit.location else ""
        snippet = " ".join(hit.text.split())
        if len(snippet) > SNIPPET_CHARS:
            snippet = snippet[:SNIPPET_CHARS - 1] + "…"
        lines.append(f"[{number}] *{title}*{location} — document {hit.document_id}, "
                     f"score {hit.score:.4f}\n> {escape_mrkdwn(snippet)}")
    return "\n".join(lines)
