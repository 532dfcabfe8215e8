"""/knowledge through the real Bolt app: list, search, delete and share, and who may see or do what."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bot.slack.listeners import commands as slash
from knowledge.embed import make_embedder
from knowledge.ingest import ingest_bytes
from tests.fakes import slack as fs
from tests.slackapp import Bot, running_bot
from tests.store_rows import knowledge_count_rows, knowledge_total_rows

pytestmark = pytest.mark.timeout(120)

ALICE, ALICE_DM = fs.USER_ID, fs.DM_CHANNEL_ID
BOB, ADMIN = "U0BOB", "U0ADMIN"
GENERAL, OTHER = fs.CHANNEL_ID, "C0OTHER"
HOLDING = "Looking through the documents…"

DOCS = {  # title: (scope, uploader, text)
    "alice-notes.md": (f"user:{ALICE}", ALICE, "# Notes\n\nThe launch codename is BLUEHERON; keep it quiet.\n"),
    "general-faq.md": (f"channel:{GENERAL}", BOB, "# FAQ\n\nThe coffee machine is on the fourth floor.\n"),
    "bob-secret.md": (f"user:{BOB}", BOB, "# Bob\n\nBob's salary review is in March.\n"),
    "policy.md": ("workspace", ADMIN, "# Policy\n\nEveryone gets twenty-five days of paid holiday.\n"),
    "other-plan.md": (f"channel:{OTHER}", ALICE, "# Plan\n\nThe other team ships the parking app in May.\n"),
}


async def seed(bot: Bot) -> dict[str, int]:
    embedder = make_embedder(bot.services.settings)
    ids = {}
    for title, (scope, uploader, text) in DOCS.items():
        result = await ingest_bytes(bot.services.store, embedder, data=text.encode(), filename=title, mimetype="text/markdown",
                              scope=scope, uploaded_by=uploader, slack_file_id=f"F{len(ids)}",
                              permalink=f"https://fake.slack.com/files/{uploader}/F{len(ids)}/{title}")
        ids[title] = result.document_id
    return ids


async def knowledge(bot: Bot, text: str, *, user: str = ALICE, channel: str = GENERAL) -> str:
    """The ephemeral answer: in the ack when ready in time, else the holding line and then via response_url."""
    result, response_url = await bot.command("/knowledge", text, user_id=user, channel_id=channel)
    body = result.json()
    assert body["response_type"] == "ephemeral"
    if body["text"] != HOLDING:
        assert bot.slack.responses[response_url] == []
        return body["text"]
    [posted] = await bot.slack.wait_for(lambda: bot.slack.responses[response_url], timeout=20, what="the answer")
    assert posted["response_type"] == "ephemeral"
    return posted["text"]


def listed(text: str) -> list[str]:
    """Titles in a /knowledge list answer, in order."""
    return [line.split("|", 1)[1].split(">", 1)[0] for line in text.splitlines()[1:]]


@pytest.fixture
async def bot(tmp_path):
    async with running_bot(tmp_path, THREADBOT_ADMINS=ADMIN) as running:
        running.ids = await seed(running)  # type: ignore[attr-defined]
        yield running


async def test_list_shows_only_what_is_visible_where_it_is_asked(bot: Bot):
    ids = bot.ids  # type: ignore[attr-defined]
    text = await knowledge(bot, "list")
    assert text.startswith("*2 documents visible here:*\n")
    assert listed(text) == ["policy.md", "general-faq.md"]
    faq = text.splitlines()[2]
    link = f"<https://fake.slack.com/files/{BOB}/F1/general-faq.md|general-faq.md>"
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    assert faq == f"• `{ids['general-faq.md']}` {link} — 1 chunk, <#{GENERAL}>, added {today} by <@{BOB}>"
    assert listed(await knowledge(bot, "", channel=ALICE_DM)) == ["policy.md", "alice-notes.md"]
    assert listed(await knowledge(bot, "list", user=BOB, channel=OTHER)) == ["other-plan.md", "policy.md"]
    assert listed(await knowledge(bot, "list all")) == ["policy.md", "general-faq.md"]  # not an admin
    everything = await knowledge(bot, "list all", user=ADMIN)
    assert everything.startswith("*5 documents in the knowledge base:*")
    assert listed(everything) == list(reversed(DOCS))
    assert f"private to <@{BOB}>" in everything
    assert (await knowledge(bot, "list", channel="C0EMPTY")).startswith("*1 document visible here:*")


async def test_search_finds_only_visible_passages(bot: Bot):
    ids = bot.ids  # type: ignore[attr-defined]
    text = await knowledge(bot, "search launch codename", channel=ALICE_DM)
    first = text.splitlines()
    assert first[0].startswith("*Top ") and first[0].endswith("for* _launch codename_:")
    assert first[1].startswith(f"[1] *<https://fake.slack.com/files/{ALICE}/F0/alice-notes.md|alice-notes.md>*, Notes"
                               f" — document {ids['alice-notes.md']}, score ")
    assert first[2] == "> # Notes The launch codename is BLUEHERON; keep it quiet."
    # The same question from a channel, or by Bob, never shows Alice's private note.
    for user, channel in ((ALICE, GENERAL), (BOB, GENERAL), (BOB, "D0BOB"), (ADMIN, GENERAL)):
        text = await knowledge(bot, "search launch codename", user=user, channel=channel)
        assert "BLUEHERON" not in text and "alice-notes" not in text, (user, channel, text)
    assert "in March" not in await knowledge(bot, "search salary review", channel=ALICE_DM)
    assert "salary review is in March" in await knowledge(bot, "search salary review", user=BOB, channel="D0BOB")
    assert (await knowledge(bot, "search")).startswith("What should I search for?")


async def test_delete_own_documents_admins_any_and_nothing_is_left(bot: Bot):
    ids = bot.ids  # type: ignore[attr-defined]
    store = bot.services.store
    # Someone else's private document: not even its title is revealed.
    secret = ids["bob-secret.md"]
    assert await knowledge(bot, f"delete {secret}") == f"There is no document {secret} here."
    assert await knowledge(bot, "delete 999") == "There is no document 999 here."
    assert (await knowledge(bot, f"delete {ids['general-faq.md']}")
            == "Only the person who shared *general-faq.md* or an admin can delete it.")
    assert (await knowledge(bot, "delete notes")).startswith("Give me a document id, e.g. `/knowledge delete 12`")

    # Her own document, even from a conversation where it is not visible.
    other = ids["other-plan.md"]
    assert await knowledge(bot, f"delete #{other}", channel=ALICE_DM) == (
        f"Deleted *other-plan.md* (document {other}) from every index.")
    assert knowledge_count_rows(store, other) == {"documents": 0, "chunks": 0, "fts": 0, "vectors": 0}
    assert "ships the parking app" not in await knowledge(bot, "search parking app", user=BOB, channel=OTHER)

    assert await knowledge(bot, f"delete {secret}", user=ADMIN) == (
        f"Deleted *bob-secret.md* (document {secret}) from every index.")
    assert knowledge_count_rows(store, secret) == {"documents": 0, "chunks": 0, "fts": 0, "vectors": 0}
    assert "in March" not in await knowledge(bot, "search salary review", user=BOB, channel="D0BOB")
    totals = knowledge_total_rows(store)
    assert totals["documents"] == 3 and totals["chunks"] == totals["fts"] == 3
    assert await knowledge(bot, f"delete {secret}", user=ADMIN) == f"There is no document {secret} here."


async def test_admins_make_a_document_workspace_wide(bot: Bot):
    ids = bot.ids  # type: ignore[attr-defined]
    faq = ids["general-faq.md"]
    assert "fourth floor" not in await knowledge(bot, "search coffee machine", channel=ALICE_DM)
    assert await knowledge(bot, f"share {faq}") == "Only admins can make a document visible to the whole workspace."
    assert await knowledge(bot, f"share {faq}", user=ADMIN) == (
        f"*general-faq.md* (document {faq}) is now visible in the whole workspace.")
    assert (await bot.services.store.knowledge_document(faq)).scope == "workspace"
    assert "coffee machine is on the fourth floor" in await knowledge(bot, "search coffee machine", channel=ALICE_DM)
    assert "general-faq.md" in await knowledge(bot, "list", user=BOB, channel=OTHER)
    assert (await knowledge(bot, f"share {faq}", user=ADMIN)).endswith("is already visible in the whole workspace.")


async def test_help_unknown_verbs_and_slow_answers(bot: Bot, monkeypatch):
    help_text = await knowledge(bot, "help")
    assert help_text.startswith("*/knowledge* — the documents I answer from.")
    assert "`/knowledge delete <id>`" in help_text
    unknown = await knowledge(bot, "frobnicate <!channel>")
    assert unknown.startswith("I don't know `frobnicate`.\n*/knowledge*")
    monkeypatch.setattr(slash, "ACK_WITHIN_S", 0)  # as if the search were slow
    result, response_url = await bot.command("/knowledge", "search paid holiday", channel_id=ALICE_DM)
    assert result.json() == {"text": HOLDING, "response_type": "ephemeral"}
    [posted] = await bot.slack.wait_for(lambda: bot.slack.responses[response_url], timeout=20, what="the answer")
    assert "twenty-five days of paid holiday" in posted["text"] and posted["response_type"] == "ephemeral"
    assert bot.slack.calls("chat.postMessage") == []
