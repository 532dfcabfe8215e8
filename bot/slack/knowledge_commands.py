"""/knowledge in Slack: list, search, delete and (admins) share documents, answered as mrkdwn text."""
from __future__ import annotations

from datetime import datetime, timezone

from bot.config import Settings
from bot.slack.mrkdwn import escape_mrkdwn, slack_link
from bot.store import KnowledgeDocument, Store
from knowledge.documents import AdminsOnly, Caller, NotYours, delete_document, share_document, visible_documents
from knowledge.embed import make_embedder
from knowledge.errors import DocumentNotFound
from knowledge.scopes import WORKSPACE
from knowledge.search import SearchHit, search

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
    caller = Caller(user_id=user_id, channel_id=channel_id, is_admin=user_id in settings.admins)
    if verb in ("", "list"):
        everything = rest.lower() == "all" and caller.is_admin
        return list_text(await visible_documents(store, caller, everything=everything), everything=everything)
    if verb == "search":
        if not rest:
            return "What should I search for? Try `/knowledge search vacation policy`."
        return search_text(rest, await search(store, make_embedder(settings), rest, scopes=caller.visible, k=SEARCH_K))
    if verb in ("delete", "share"):
        number = rest.removeprefix("#")
        if not number.isdigit():
            return f"Give me a document id, e.g. `/knowledge {verb} 12` (see `/knowledge list`)."
        try:
            if verb == "delete":
                document = await delete_document(store, int(number), caller)
                return f"Deleted *{escape_mrkdwn(document.title)}* (document {document.id}) from every index."
            shared = await share_document(store, int(number), caller)
        except DocumentNotFound:
            return f"There is no document {number} here."
        except NotYours as exc:
            return f"Only the person who shared *{escape_mrkdwn(exc.document.title)}* or an admin can delete it."
        except AdminsOnly:
            return "Only admins can make a document visible to the whole workspace."
        title, document_id = escape_mrkdwn(shared.document.title), shared.document.id
        if shared.already:
            return f"*{title}* (document {document_id}) is already visible in the whole workspace."
        return f"*{title}* (document {document_id}) is now visible in the whole workspace."
    if verb == "help":
        return HELP
    return f"I don't know `{escape_mrkdwn(verb)}`.\n{HELP}"


def where(scope: str) -> str:
    if scope == WORKSPACE:
        return "workspace"
    if scope.startswith("user:"):
        return f"private to <@{scope.removeprefix('user:')}>"
    return f"<#{scope.removeprefix('channel:')}>"


def list_text(documents: list[KnowledgeDocument], *, everything: bool) -> str:
    """The documents (newest first) as mrkdwn; `everything`: the whole knowledge base, for admins."""
    if not documents:
        return "No documents are visible here yet. Share a file with me to add one."
    here = "in the knowledge base" if everything else "visible here"
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
        lines.append(f"[{number}] *{title}*{location} — document {hit.document_id}, "
                     f"score {hit.score:.4f}\n> {escape_mrkdwn(hit.snippet(SNIPPET_CHARS))}")
    return "\n".join(lines)
