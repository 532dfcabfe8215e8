"""Files shared with the bot: progress in one message, answers from them with citations, privacy across
users and channels, re-upload, every bad file, and the bot token kept away from non-Slack hosts."""
from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import uploads
from bot.config import load_settings
from bot.slack.edit_budget import EditBudget
from bot.slack.uploads import SharedFile, UploadProgress, download, is_slack_host
from knowledge.errors import WrongContent
from tests.fakes import slack as fs
from tests.fakes.anthropic import Reply
from tests.fakes.slack import FakeSlack
from tests.knowledge_files import make_docx_bomb, make_encrypted_pdf, make_pdf
from tests.slackapp import Bot, running_bot
from tests.store_rows import knowledge_count_rows, knowledge_total_rows

pytestmark = pytest.mark.timeout(120)

BOB, BOB_DM = "U0BOB", "D0BOB"
OTHER_CHANNEL = "C0OTHER"
FILLER = "\n".join(f"Room {i}: the facilities team keeps the plants, printers and meeting rooms on floor {i} tidy."
                   for i in range(12))
HANDBOOK = make_pdf([
    "ACME handbook\nWelcome to ACME.\n" + FILLER,
    "Holidays\nEveryone gets twenty-five days of paid holiday per year.\n" + FILLER,
    "Expenses\nSubmit receipts within thirty days of purchase.",
])
PARKING = b"# Parking\n\nStaff park on level 3 of the garage; visitors use level 1.\n"


@pytest.fixture(autouse=True)
def every_progress_step(monkeypatch):
    # Edit on every stage, so a small file still shows its stages (production: at most once a second).
    monkeypatch.setattr(uploads, "PROGRESS_INTERVAL_S", 0.0)


def tool_result_text(request: dict[str, Any]) -> str:
    [result] = [b for b in request["messages"][-1]["content"] if b["type"] == "tool_result"]
    assert result["is_error"] is False, result
    return result["content"]


async def share(bot: Bot, event: dict[str, Any], *, count: int = 1) -> list[fs.FakeMessage]:
    """Deliver a message with files and wait until each file's progress message has its outcome."""
    await bot.deliver(event)
    thread_ts = event.get("thread_ts") or event["ts"]

    def finished() -> list[fs.FakeMessage] | None:
        done = [m for m in bot.bot_messages(event["channel"], thread_ts)
                if m.text.startswith((":white_check_mark:", ":warning:"))]
        return done if len(done) >= count else None

    return await bot.slack.wait_for(finished, timeout=30, what=lambda: f"{count} upload outcomes; have "
                                    f"{[m.text for m in bot.bot_messages(event['channel'], thread_ts)]}")


async def ask(bot: Bot, event: dict[str, Any], query: str, answer: str) -> str:
    """Ask a question the model answers with one search_docs call; returns the tool_result it received."""
    before = len(bot.model.requests)
    bot.model.add(Reply.tool("search_docs", {"query": query}), Reply.text(answer))
    await bot.deliver(event)
    await bot.bot_message_where(event["channel"], event.get("thread_ts") or event["ts"], lambda t: t == answer,
                                what=f"the answer {answer!r}")
    requests = bot.model.requests[before:]
    assert len(requests) == 2
    return tool_result_text(requests[1])


def mention_with_files(text: str, files: list[dict[str, str]], *, user: str = fs.USER_ID,
                       channel: str = fs.CHANNEL_ID) -> dict[str, Any]:
    event = fs.app_mention(text, user=user, channel=channel)
    event["files"] = files
    return event


async def test_dm_upload_progress_answer_with_citation_privacy_and_reupload(tmp_path):
    async with running_bot(tmp_path) as bot:
        slack, store = bot.slack, bot.services.store
        fid = slack.add_file("handbook.pdf", HANDBOOK, mimetype="application/pdf", filetype="pdf")
        upload = fs.dm_message("", files=[{"id": fid, "name": "handbook.pdf"}])

        [progress] = await share(bot, upload)
        # One message, edited through the stages in order.
        assert [m.ts for m in bot.bot_messages(fs.DM_CHANNEL_ID, upload["ts"])] == [progress.ts]
        history = progress.history
        assert history[0] == ":inbox_tray: Downloading handbook.pdf…"
        indexing = [t for t in history if t.startswith(":hourglass_flowing_sand: Indexing handbook.pdf: ")]
        assert indexing, history
        [document] = await store.knowledge_documents()
        assert f"0/{document.chunk_count} chunks…" in indexing[0]
        stages = [t.split()[1] for t in history[1:-1]]
        assert stages == sorted(stages, key=["Reading", "Indexing"].index), history
        assert history[-1].startswith(f":white_check_mark: Added *handbook.pdf* (document {document.id}): "
                                      f"{document.chunk_count} chunks in ")
        assert history[-1].endswith(" s. Visible to only you.")
        assert bot.model.requests == []  # a file without a question is not sent to the model
        assert slack.downloads == [(fid, True)]
        assert (document.scope, document.uploaded_by, document.slack_file_id) == (
            f"user:{fs.USER_ID}", fs.USER_ID, fid)
        permalink = slack.files[fid].to_api(slack.base_url)["permalink"]
        assert document.permalink == permalink

        # The model gets the passage, numbered, with the page and the Slack permalink to cite.
        result = await ask(bot, fs.dm_message("How many holiday days do we get?"), "paid holiday days per year",
                           "Everyone gets twenty-five days [1].")
        assert f"\n[1] handbook.pdf, p. 2 — {permalink}\n> Holidays\n> Everyone gets twenty-five days" in result
        assert "quoted material" in result

        # Bob, in his own DM, cannot see Alice's private upload.
        result = await ask(bot, fs.dm_message("How many holiday days?", user=BOB, channel=BOB_DM),
                           "paid holiday days per year", "I don't have that information.")
        assert result.startswith("No shared documents matched") and "twenty-five" not in result

        # A channel upload (file attached to a mention) is visible in that channel, to anyone there.
        pid = slack.add_file("parking.md", PARKING, mimetype="text/markdown", filetype="markdown")
        mention = mention_with_files("where do staff park?", [{"id": pid, "name": "parking.md"}])
        bot.model.add(Reply.tool("search_docs", {"query": "staff parking level"}), Reply.text("Level 3 [1]."))
        [added] = await share(bot, mention)
        assert added.text.endswith("Visible to this channel.") and "Added *parking.md*" in added.text
        answer = await bot.bot_message_where(fs.CHANNEL_ID, mention["ts"], lambda t: t == "Level 3 [1].")
        assert answer.ts != added.ts
        result = tool_result_text(bot.model.requests[-1])
        assert "parking.md, Parking" in result and "level 3" in result
        # Alice's private DM document is not searched from a channel, where everyone reads the answer.
        assert "twenty-five" not in result and "handbook" not in result

        result = await ask(bot, fs.app_mention("where do staff park?", user=BOB), "staff parking level", "Level 3.")
        assert "level 3" in result
        result = await ask(bot, fs.app_mention("where do staff park?", user=BOB, channel=OTHER_CHANNEL),
                           "staff parking level", "No idea.")
        assert result.startswith("No shared documents matched") and "level 3" not in result

        # The same bytes shared again in the same place replace the document; elsewhere they are a new one.
        again = slack.add_file("handbook-copy.pdf", HANDBOOK, mimetype="application/pdf", filetype="pdf")
        [replaced] = await share(bot, fs.dm_message("", files=[{"id": again, "name": "handbook-copy.pdf"}]))
        assert replaced.text.startswith(":white_check_mark: Replaced *handbook-copy.pdf*")
        mine = await store.knowledge_documents([f"user:{fs.USER_ID}"])
        assert [d.slack_file_id for d in mine] == [again]
        assert await store.knowledge_document(document.id) is None
        assert knowledge_count_rows(store, document.id) == {"documents": 0, "chunks": 0, "fts": 0, "vectors": 0}
        [bobs] = await share(bot, fs.dm_message("", user=BOB, channel=BOB_DM,
                                                files=[{"id": again, "name": "handbook-copy.pdf"}]))
        assert bobs.text.startswith(":white_check_mark: Added *handbook-copy.pdf*")
        assert len(await store.knowledge_documents()) == 3  # Alice's, Bob's, the channel's


@asynccontextmanager
async def recording_server(handler: Any = None) -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """A loopback server that is not Slack: records the headers of every request it gets."""
    seen: list[dict[str, str]] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append(dict(request.headers))
        if handler is not None:
            return await handler(request)
        return web.Response(body=b"stolen", content_type="text/plain")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    finally:
        await runner.cleanup()


async def test_bad_files_each_get_a_clear_reply_and_store_nothing(tmp_path):
    async with running_bot(tmp_path, THREADBOT_MAX_FILE_MB="0.2") as bot, recording_server() as (elsewhere, seen):
        slack, store = bot.slack, bot.services.store
        files = {
            "photo.png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "image/png", "png"),
            "locked.pdf": (make_encrypted_pdf(["Top secret numbers."]), "application/pdf", "pdf"),
            "broken.pdf": (b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ngarbage without xref", "application/pdf",
                           "pdf"),
            "bomb.docx": (make_docx_bomb(40),
                          "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
            "big.txt": (b"lorem ipsum dolor sit amet\n" * 12_000, "text/plain", "text"),
            "saved-page.pdf": (fs.LOGIN_PAGE.encode(), "application/pdf", "pdf"),
            "empty.txt": (b"   \n\n  ", "text/plain", "text"),
        }
        ids = {name: slack.add_file(name, content, mimetype=mime, filetype=kind)
               for name, (content, mime, kind) in files.items()}
        ids["notes.txt"] = slack.add_file("notes.txt", b"meeting notes", url_override=f"{elsewhere}/notes.txt")
        event = fs.dm_message("", files=[{"id": fid, "name": name} for name, fid in ids.items()])

        outcomes = await share(bot, event, count=len(ids))
        by_name = {name: next(m.text for m in outcomes if m.history[0].endswith(f"Downloading {name}…"))
                   for name in ids}
        expected = {
            "photo.png": "I can't read photo.png",
            "locked.pdf": "locked.pdf is password-protected. Please share an unprotected copy.",
            "broken.pdf": "broken.pdf",
            "bomb.docx": "bomb.docx expands to 40 MB",
            "big.txt": "big.txt is 0.3 MB; the limit is 0.2 MB.",
            "saved-page.pdf": "web page",
            "empty.txt": "I couldn't find any text in empty.txt",
            "notes.txt": uploads.UnsafeFileHost.__doc__,
        }
        for name, phrase in expected.items():
            text = by_name[name]
            assert text.startswith(f":warning: I couldn't add {name}. "), text
            assert phrase in text, (name, text)
            assert text.endswith("`)") and "(ref `" in text, text  # a reference id, never a stack trace
        assert "damaged" in by_name["broken.pdf"] or "not a valid PDF" in by_name["broken.pdf"]
        assert knowledge_total_rows(store) == {k: 0 for k in knowledge_total_rows(store)}
        assert sum(knowledge_total_rows(store).values()) == 0
        # The size from files.info stopped big.txt before any byte was downloaded…
        assert ids["big.txt"] not in [fid for fid, _ in slack.downloads]
        # …and the bot token never went to the host that is not Slack's.
        assert seen == []
        assert bot.model.requests == []


async def test_token_is_not_sent_through_a_redirect_to_another_host(tmp_path):
    async with recording_server() as (target, target_seen):
        async def redirect(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(f"{target}/file.txt")

        async with recording_server(redirect) as (api, api_seen), aiohttp.ClientSession() as http:
            # The "Slack" here is SLACK_API_URL's origin; the same host on another port is another server.
            settings = load_settings(SLACK_API_URL=f"{api}/api/")
            file = SharedFile(id="F1", name="a.txt", mimetype="text/plain", size=5, url=f"{api}/files/F1/a.txt",
                              permalink=None)
            with pytest.raises(uploads.UnsafeFileHost):
                await download(http, file, token=fs.BOT_TOKEN, settings=settings)
            assert api_seen[0]["Authorization"] == f"Bearer {fs.BOT_TOKEN}"
            assert target_seen == []


async def test_a_sign_in_page_instead_of_the_file_is_refused(tmp_path):
    async with FakeSlack() as slack, aiohttp.ClientSession() as http:
        fid = slack.add_file("report.docx", b"PK\x03\x04 not really", mimetype="application/msword")
        info = slack.files[fid].to_api(slack.base_url)
        file = SharedFile(id=fid, name="report.docx", mimetype=info["mimetype"], size=info["size"],
                          url=info["url_private_download"], permalink=info["permalink"])
        settings = load_settings(SLACK_API_URL=slack.api_url)
        # A token Slack doesn't accept gets its sign-in page with HTTP 200, not an error.
        with pytest.raises(WrongContent, match="sign-in page"):
            await download(http, file, token="xoxb-revoked", settings=settings)
        assert slack.downloads == [(fid, False)]
        assert await download(http, file, token=fs.BOT_TOKEN, settings=settings) == b"PK\x03\x04 not really"


def test_only_slack_hosts_get_the_token():
    settings = load_settings(SLACK_API_URL="http://127.0.0.1:8111/api/")
    allowed = ["https://files.slack.com/files-pri/T1-F1/download/a.pdf", "https://slack.com/x",
               "https://acme.enterprise.slack.com/f", "http://127.0.0.1:8111/files/F1/a.txt"]
    refused = ["http://files.slack.com/files-pri/a.pdf", "https://files.slack.com:8443/a", "https://evilslack.com/a",
               "https://slack.com.evil.example/a", "http://127.0.0.1:8112/files/F1/a.txt",
               "https://127.0.0.1:8111/files/a", "file:///etc/passwd", "not a url"]
    assert [u for u in allowed if not is_slack_host(u, settings)] == []
    assert [u for u in refused if is_slack_host(u, settings)] == []
    default = load_settings()
    assert is_slack_host("https://files.slack.com/a", default) and not is_slack_host("http://127.0.0.1:8111/a", default)


async def test_progress_sends_only_the_newest_text_and_the_outcome_lands_last():
    async with FakeSlack() as slack:
        client = AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url)
        progress = UploadProgress(client, channel=fs.DM_CHANNEL_ID, thread_ts="1.000", budget=EditBudget(),
                                  interval_s=0.2)
        await progress.start("Downloading a.txt…")
        for done in range(0, 101, 10):
            progress.update(f"Indexing {done}/100")
        await slack.wait_for(lambda: progress._task.done(), timeout=5, what="the throttled edit")
        message = slack.message(fs.DM_CHANNEL_ID, progress.ts)
        assert message.history == ["Downloading a.txt…", "Indexing 100/100"]

        slack.set_latency(0.3, method="chat.update")
        progress.update("Indexing 100/100 (again)")
        await slack.wait_for(lambda: progress._editing, timeout=5, what="the edit to be on the wire")
        await progress.finish("Added a.txt")  # while the previous edit is still on the wire
        progress.update("late")  # after the outcome: ignored
        assert message.text == "Added a.txt"
        assert message.history[-2:] == ["Indexing 100/100 (again)", "Added a.txt"]
