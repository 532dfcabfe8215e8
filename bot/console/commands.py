"""The console's own commands (/usage, /knowledge list|search|delete, /help) as plain-text replies."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from knowledge.scopes import CONSOLE_CHANNEL, CONSOLE_USER

if TYPE_CHECKING:
    from bot.store import Store
    from knowledge.embed import Embedder

CONSOLE_TEAM = "console"
UPLOAD_SCOPE = f"user:{CONSOLE_USER}"
__all__ = ["CONSOLE_CHANNEL", "CONSOLE_TEAM", "CONSOLE_USER", "UPLOAD_SCOPE"]

HELP = """\
Type a message and press Enter; the answer streams in. Commands:
  /usage [team | U… | N]    token counts and cost (yours by default, N days)
  /knowledge list           documents in the knowledge base
  /knowledge search QUERY   what the document search finds
  /knowledge delete ID      remove a document
  /upload PATH              add a file to the knowledge base (private to the console);
                            an image goes to the model with your next message instead
  /help                     this text
  /exit                     quit (Ctrl-D does too; Ctrl-C stops an answer)"""

USAGE_HELP = ("/usage shows the console's usage (today, 7 and 30 days); /usage team shows everyone's, "
              "/usage U… one Slack user's; add a number of days, e.g. /usage 7.")


async def usage_text(store: "Store", *, text: str, now: datetime) -> str:
    """The /usage reply as plain text. The console is the operator's own database, so it may also
    show the team's or any user's usage (Slack's /usage limits that to admins)."""
    from bot.accounting.report import build_report, parse_usage_args, render_text

    args = parse_usage_args(text, caller_id=CONSOLE_USER, extra_self_words=(CONSOLE_USER,),
                            help_text=USAGE_HELP, from_slack=False)
    if isinstance(args, str):
        return args
    return render_text(await build_report(store, user_id=args.user_id, days=args.days, now=now))


async def list_text(store: "Store") -> str:
    """/knowledge list: every document, newest first (the console runs on the operator's own database)."""
    from knowledge.documents import OPERATOR, visible_documents

    documents = await visible_documents(store, OPERATOR, everything=True)
    if not documents:
        return "The knowledge base is empty. Add a file with /upload PATH."
    lines = [f"{len(documents)} document{'s' if len(documents) != 1 else ''}:"]
    for d in documents:
        added = datetime.fromtimestamp(d.created_at, timezone.utc).strftime("%Y-%m-%d")
        lines.append(f"  {d.id:>4}  {d.title} — {d.scope}, {d.chunk_count} chunks, added {added} by {d.uploaded_by}")
    return "\n".join(lines)


async def delete_text(store: "Store", document_id: int) -> str:
    """/knowledge delete ID; raises DocumentNotFound (a ThreadbotError the console shows)."""
    from knowledge.documents import OPERATOR, delete_document

    document = await delete_document(store, document_id, OPERATOR)
    return f"Deleted document {document.id} ({document.title})."


async def search_text(store: "Store", embedder: "Embedder", query: str) -> str:
    """/knowledge search QUERY: the top five passages with title, section and score."""
    from knowledge.scopes import scopes_for
    from knowledge.search import search

    # What the bot's search_docs tool sees from the console: workspace documents and its own uploads.
    scopes = scopes_for(user_id=CONSOLE_USER, channel_id=CONSOLE_CHANNEL)
    hits = await search(store, embedder, query, scopes=scopes, k=5)
    if not hits:
        return f"Nothing in {', '.join(scopes)} matched {query!r}."
    lines = []
    for number, hit in enumerate(hits, start=1):
        where = f", {hit.location}" if hit.location else ""
        lines += [f"[{number}] {hit.title}{where} — document {hit.document_id}, score {hit.score:.4f}",
                  f"    {hit.snippet(200)}"]
    return "\n".join(lines)
