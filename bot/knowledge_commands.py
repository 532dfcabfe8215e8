"""/knowledge in Slack: list, search, delete and (admins) share documents, answered as mrkdwn text."""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from bot.config import Settings
from bot.mrkdwn import escape_mrkdwn
from bot.store import Store
from knowledge.embed import make_embedder
from knowledge.errors import DocumentNotFound
from knowledge.ingest import delete_document, list_documents, set_scope
from knowledge.search import WORKSPACE, scopes_for, search_async

HELP = (
    "*/knowledge* — the documents I answer from. Share a file with me (in a DM it stays private to you; "
    "in a channel, mention me with the file attached and it is visible in that channel).\n"
    "• `/knowledge list` — documents visible here\n"
    "• `/knowledge search <query>` — what my document search finds\n"
    "• `/knowledge delete <id>` — remove one of your documents (admins: any)\n"
    "• `/knowledge share <id>` — admins: make a document visible in the whole workspace"
)
SNIPPET_CHARS = 200


async def handle_knowledge_command(store: Store, settings: Settings, *, user_id: str, channel_id: str,
                                   text: str) -> str:
    verb, _, rest = text.strip().partition(" ")
    verb, rest = verb.lower(), rest.strip()
    is_admin = user_id in settings.admins
    if verb in ("", "list"):
        return list_text(store, scopes_for(user_id=user_id, channel_id=channel_id))
    if verb == "search":
        if not rest:
            return "What should I search for? Try `/knowledge search vacation policy`."
        hits = await search_async(store, make_embedder(settings), rest,
                                  scopes=scopes_for(user_id=user_id, channel_id=channel_id), k=5)
        return search_text(rest, hits)
    if verb in ("delete", "share"):
        if not rest.isdigit():
            return f"Give me a document id, e.g. `/knowledge {verb} 12` (see `/knowledge list`)."
        document = store.knowledge_document(int(rest))
        visible = scopes_for(user_id=user_id, channel_id=channel_id)
        if document is None or (document.scope not in visible and not is_admin):
            return f"There is no document {rest} here."
        if verb == "delete":
            if document.uploaded_by != user_id and not is_admin:
                return f"Only the person who shared *{escape_mrkdwn(document.title)}* or an admin can delete it."
            try:
                await asyncio.to_thread(delete_document, store, document.id)
            except DocumentNotFound:
                return f"There is no document {rest} here."
            return f"Deleted *{escape_mrkdwn(document.title)}* (document {document.id}) from every index."
        if not is_admin:
            return "Only admins can make a document visible to the whole workspace."
        set_scope(store, document.id, WORKSPACE)
        return f"*{escape_mrkdwn(document.title)}* (document {document.id}) is now visible in the whole workspace."
    return f"I don't know `{escape_mrkdwn(verb)}`.\n{HELP}" if verb != "help" else HELP


def list_text(store: Store, scopes: list[str]) -> str:
    documents = list_documents(store, scopes)
    if not documents:
        return "No documents are visible here yet. Share a file with me to add one."
    lines = [f"*{len(documents)} document{'s' if len(documents) != 1 else ''} visible here:*"]
    for d in documents:
        added = datetime.fromtimestamp(d.created_at, timezone.utc).strftime("%Y-%m-%d")
        where = "workspace" if d.scope == WORKSPACE else ("private" if d.scope.startswith("user:") else "this channel")
        title = f"<{d.permalink}|{escape_mrkdwn(d.title)}>" if d.permalink else escape_mrkdwn(d.title)
        lines.append(f"• `{d.id}` {title} — {d.chunk_count:,} chunks, {where}, added {added} by <@{d.uploaded_by}>")
    return "\n".join(lines)


def search_text(query: str, hits: list) -> str:
    if not hits:
        return f"Nothing visible here matched _{escape_mrkdwn(query)}_."
    lines = [f"*Top {len(hits)} for* _{escape_mrkdwn(query)}_:"]
    for number, hit in enumerate(hits, start=1):
        where = f", {escape_mrkdwn(hit.location)}" if hit.location else ""
        snippet = " ".join(hit.text.split())
        if len(snippet) > SNIPPET_CHARS:
            snippet = snippet[:SNIPPET_CHARS - 1] + "…"
        lines.append(f"[{number}] *{escape_mrkdwn(hit.title)}*{where} — document {hit.document_id}, "
                     f"score {hit.score:.4f}\n> {escape_mrkdwn(snippet)}")
    return "\n".join(lines)
