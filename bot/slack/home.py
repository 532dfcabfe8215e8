"""The App Home tab: a user's usage and documents, and for admins the channels' settings and today's spend."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from bot.accounting.report import UsageReport, build_report, format_cost, format_tokens, sparkline
from bot.config import Settings
from bot.slack.channel_commands import settings_lines, shorten
from bot.slack.knowledge_commands import where
from bot.slack.mrkdwn import escape_mrkdwn, slack_link
from bot.store import ChannelSettings, KnowledgeDocument, Store

SHOWN_DOCUMENTS = 15
SHOWN_CHANNELS = 20
SECTION_CHARS = 3000  # Block Kit's limit for a section's text


async def home_view(store: Store, settings: Settings, *, user_id: str, now: datetime) -> dict[str, Any]:
    """The Home tab for this user, built fresh each time it is opened."""
    report = await build_report(store, user_id=user_id, days=30, now=now)
    documents = [d for d in await store.knowledge_documents(None) if d.uploaded_by == user_id]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "threadbot"}},
        _section(usage_text(report)),
        {"type": "divider"},
        _section(documents_text(documents)),
    ]
    if user_id in settings.admins:
        day_start = now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        spent = (await store.usage_totals(since=day_start.timestamp())).cost_usd
        blocks += [
            {"type": "divider"},
            {"type": "header", "text": {"type": "plain_text", "text": "Admin"}},
            _section(spend_text(spent, settings.daily_usd)),
            _section(channels_text(await store.all_channel_settings(), default_model=settings.model)),
        ]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                   f"Updated {now.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC. Costs are estimates from list "
                   "prices; days are UTC. `/usage` has the breakdowns."}]})
    return {"type": "home", "blocks": blocks}


def usage_text(report: UsageReport) -> str:
    lines = ["*Your usage*"]
    for p in report.periods:
        t = p.totals
        lines.append(f"• *{p.label}*: {t.calls:,} call{'s' if t.calls != 1 else ''}, {format_cost(t.cost_usd)} — "
                     f"{format_tokens(t.input_tokens)} input · {format_tokens(t.output_tokens)} output · "
                     f"{format_tokens(t.cache_creation_input_tokens)} cache write · "
                     f"{format_tokens(t.cache_read_input_tokens)} cache read")
    costs = [d.totals.cost_usd for d in report.daily]
    first, last = report.daily[0].day, report.daily[-1].day
    lines.append(f"Daily cost, {first:%b} {first.day} – {last:%b} {last.day}: `{sparkline(costs)}`")
    return "\n".join(lines)


def documents_text(documents: list[KnowledgeDocument]) -> str:
    if not documents:
        return "*Your documents*\nNone yet. Share a file with me in a DM (private to you) or in a channel."
    lines = [f"*Your documents* ({len(documents):,})"]
    for d in documents[:SHOWN_DOCUMENTS]:
        title = escape_mrkdwn(shorten(d.title, 120))
        if d.permalink:
            title = slack_link(d.permalink, title)
        lines.append(f"• `{d.id}` {title} — {where(d.scope)}, {d.chunk_count:,} chunks")
    if len(documents) > SHOWN_DOCUMENTS:
        lines.append(f"…and {len(documents) - SHOWN_DOCUMENTS:,} more: `/knowledge list`.")
    return "\n".join(lines)


def spend_text(spent: Decimal, daily_usd: Decimal) -> str:
    if not daily_usd:
        return f"*Workspace spend today*: {format_cost(spent)} (no daily limit)"
    share = spent / daily_usd * 100
    return (f"*Workspace spend today*: {format_cost(spent)} of {format_cost(daily_usd)}"
            f" ({share:.0f}% of the daily limit)")


def channels_text(channels: list[ChannelSettings], *, default_model: str) -> str:
    if not channels:
        return "*Channel settings*\nEvery channel uses the defaults. Change one with `/threadbot` in it."
    lines = [f"*Channel settings* ({len(channels):,} channel{'s' if len(channels) != 1 else ''})"]
    for found in channels[:SHOWN_CHANNELS]:
        lines_of = settings_lines(found, default_model=default_model)
        details = " ".join(line.removeprefix("• ") + ";" for line in lines_of)
        lines.append(f"• <#{found.channel_id}>: {shorten(details, 300).rstrip(';')}")
    if len(channels) > SHOWN_CHANNELS:
        lines.append(f"…and {len(channels) - SHOWN_CHANNELS:,} more.")
    return "\n".join(lines)


def _section(text: str) -> dict[str, Any]:
    if len(text) > SECTION_CHARS:
        text = text[:SECTION_CHARS - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
