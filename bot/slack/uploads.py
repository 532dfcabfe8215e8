"""Files shared with the bot: files.info → download with the bot token (Slack hosts only) → ingest,
with one progress message in the thread edited through the stages."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlparse

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.conversation.media import Attachment
from bot.errors import failure_for
from bot.slack.edit_budget import EditBudget
from bot.slack.mrkdwn import escape_mrkdwn, failure_text
from bot.slack.web_api import FAILURES, call, reason
from bot.store import NewTurn, Store
from knowledge.embed import make_embedder
from knowledge.errors import FileTooLarge, KnowledgeError, WrongContent
from knowledge.ingest import IngestResult, Progress, ingest_bytes
from knowledge.scopes import audience, scope_for_upload

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
DOWNLOAD_TIMEOUT_S = 120
PROGRESS_INTERVAL_S = 1.0  # progress edits per file at most this often (chat.update is rate-limited)


class UnsafeFileHost(KnowledgeError):
    """That file is not hosted by Slack, so I didn't download it."""


class DownloadFailed(KnowledgeError):
    """I couldn't download that file from Slack. Please try sharing it again."""


@dataclass(frozen=True)
class SharedFile:
    id: str
    name: str
    mimetype: str | None
    size: int
    url: str
    permalink: str | None


def is_slack_host(url: str, settings: Settings) -> bool:
    """Invariant 6: the bot token only goes to SLACK_API_URL's origin and to slack.com and its subdomains.

    The API URL is matched on scheme, host and port (another port on the same host is another
    server); Slack's own hosts only over HTTPS, so the token never travels in clear text.
    """
    target = urlparse(url)
    host = (target.hostname or "").lower()
    if not host:
        return False
    if _origin(target) == _origin(urlparse(settings.slack_api_url)):
        return True
    return (target.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com"))
            and target.port in (None, 443))


def _origin(parsed) -> tuple[str, str, int | None]:
    try:
        port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
    except ValueError:  # a malformed port
        return ("", "", None)
    return (parsed.scheme, (parsed.hostname or "").lower(), port)


async def file_info(client: AsyncWebClient, file_id: str) -> SharedFile:
    try:
        response = await call(client, "files.info", file=file_id)
    except SlackApiError as exc:
        raise DownloadFailed(f"Slack wouldn't give me that file ({exc.response.get('error')}).") from None
    data: dict[str, Any] = response["file"]
    url = data.get("url_private_download") or data.get("url_private")
    if not url:
        raise DownloadFailed("Slack didn't give me a download link for that file (is it an external file?).")
    return SharedFile(id=data["id"], name=data.get("name") or data.get("title") or data["id"],
                      mimetype=data.get("mimetype"), size=int(data.get("size") or 0), url=url,
                      permalink=data.get("permalink"))


def max_file_bytes(settings: Settings) -> int:
    return int(settings.max_file_mb * 1024 * 1024)


async def download(http: aiohttp.ClientSession, file: SharedFile, *, token: str, settings: Settings) -> bytes:
    """Stream the file with the bot token, never past the size limit, never to a non-Slack host."""
    try:
        return await _download(http, file, token=token, settings=settings)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        log.warning("download of %s failed: %s", file.id, type(exc).__name__)
        raise DownloadFailed() from None


async def _download(http: aiohttp.ClientSession, file: SharedFile, *, token: str, settings: Settings) -> bytes:
    max_bytes = max_file_bytes(settings)
    if file.size > max_bytes:
        raise FileTooLarge(f"{file.name} is {file.size / 1_048_576:.1f} MB; the limit is {settings.max_file_mb:g} MB.")
    url = file.url
    for _ in range(MAX_REDIRECTS + 1):
        if not is_slack_host(url, settings):
            log.warning("refusing to send the bot token to %s (file %s)", urlparse(url).netloc, file.id)
            raise UnsafeFileHost()
        # Redirects are followed by hand so the token is re-checked against every host.
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}, allow_redirects=False,
                            timeout=aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT_S)) as response:
            if response.status in (301, 302, 303, 307, 308) and "Location" in response.headers:
                url = urljoin(url, response.headers["Location"])
                continue
            if response.status != 200:
                raise DownloadFailed(f"Slack answered HTTP {response.status} when I downloaded {file.name}.")
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type == "text/html" and not (file.mimetype or "").startswith("text/html"):
                # Slack serves its sign-in page with HTTP 200 when the token is missing or lacks files:read.
                raise WrongContent(f"Slack sent a sign-in page instead of {file.name}; "
                                   "the app may be missing the files:read scope.")
            if (response.content_length or 0) > max_bytes:
                raise FileTooLarge(f"{file.name} is larger than the {settings.max_file_mb:g} MB limit.")
            data = bytearray()
            async for piece in response.content.iter_chunked(1 << 16):
                data += piece
                if len(data) > max_bytes:
                    raise FileTooLarge(f"{file.name} is larger than the {settings.max_file_mb:g} MB limit.")
            return bytes(data)
    raise DownloadFailed("Slack redirected the download too many times.")


class UploadProgress:
    """One Slack message per shared file, edited through the stages: only the newest text is sent, at
    most once per interval (and only when the shared chat.update budget has a spare token), and the
    final edit always lands last."""

    def __init__(self, client: AsyncWebClient, *, channel: str, thread_ts: str, budget: EditBudget | None = None,
                 interval_s: float | None = None):
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.budget = budget
        self.interval_s = PROGRESS_INTERVAL_S if interval_s is None else interval_s
        self.ts: str | None = None
        self._last_sent = 0.0
        self._pending: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._editing = False
        self._finished = False

    async def start(self, text: str) -> None:
        try:
            response = await call(self.client, "chat.postMessage", channel=self.channel, thread_ts=self.thread_ts,
                                  text=text)
        except FAILURES as exc:
            # Ingestion still runs; finish() posts the outcome as a new message if it can.
            log.warning("progress message failed: %s", reason(exc))
            return
        self.ts = response["ts"]
        self._last_sent = asyncio.get_running_loop().time()

    def update(self, text: str) -> None:
        """Called often (on the loop); intermediate texts may be skipped, never reordered."""
        if self._finished or self.ts is None:
            return
        self._pending = text
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending is not None and not self._finished:
            await asyncio.sleep(max(0.0, self._last_sent + self.interval_s - loop.time()))
            if self.budget is not None and not self.budget.try_acquire():
                await asyncio.sleep(max(self.interval_s, 0.1))  # no spare token: answers go first
                continue
            text, self._pending = self._pending, None
            if text is None or self._finished:
                return
            self._editing = True
            try:
                self._last_sent = loop.time()
                await call(self.client, "chat.update", patient=False, budget=self.budget, channel=self.channel,
                           ts=self.ts, text=text)
            except FAILURES as exc:  # a skipped progress step is harmless; the outcome still follows
                log.warning("progress edit failed: %s", reason(exc))
            finally:
                self._editing = False

    async def finish(self, text: str) -> None:
        self._finished = True
        self._pending = None
        task = self._task
        if task is not None and not task.done():
            if self._editing:
                # An edit already on the wire: let it land first, or it could overwrite the outcome.
                await asyncio.gather(task, return_exceptions=True)
            else:
                task.cancel()
        try:
            if self.ts is None:
                await call(self.client, "chat.postMessage", channel=self.channel, thread_ts=self.thread_ts, text=text)
                return
            if self.budget is not None:
                await self.budget.acquire()
            await call(self.client, "chat.update", budget=self.budget, channel=self.channel, ts=self.ts, text=text)
        except FAILURES as exc:
            log.warning("final progress edit failed: %s", reason(exc))


async def ingest_shared_files(*, files: list[dict[str, Any]], client: AsyncWebClient, http: aiohttp.ClientSession,
                              store: Store, settings: Settings, user_id: str, channel_id: str,
                              thread_ts: str, budget: EditBudget | None = None,
                              keep: list[Attachment] | None = None, owner: str | None = None) -> list[IngestResult]:
    """Add every file shared with a message to the knowledge base; each gets its own progress message
    and ends with either "Added …" or one clear sentence (with a reference id) saying why not.

    A DM upload is private to its uploader, a channel upload visible in that channel (invariant 7).
    `keep` collects the bytes of each file added, for a question asked with them.
    With `owner` (this process) each upload is a durable turn until its outcome is shown, so a restart
    after a crash tells the uploader it failed (its pending rows are swept at start-up).
    """
    assert settings.slack_bot_token is not None
    token = settings.slack_bot_token.get_secret_value()
    scope = scope_for_upload(user_id=user_id, channel_id=channel_id)
    loop = asyncio.get_running_loop()
    results = []
    for shared in files:
        title = str(shared.get("name") or shared.get("title") or "file")  # raw: a Failure is escaped when shown
        name = escape_mrkdwn(title)
        progress = UploadProgress(client, channel=channel_id, thread_ts=thread_ts, budget=budget)
        await progress.start(f":inbox_tray: Downloading {name}…")
        record_id = None
        if owner is not None:
            record_id = await store.claim_turn(owner=owner, turn=NewTurn(
                kind="upload", team_id="", channel_id=channel_id, thread_ts=thread_ts, ts=thread_ts, user_id=user_id,
                text=title, reply_ts=progress.ts,
                details={"interrupted": f":warning: I couldn't add {name}: I was restarted while adding it. "
                                        "Please share it again."}))
        try:
            file = await file_info(client, shared["id"])
            title, name = file.name, escape_mrkdwn(file.name)
            data = await download(http, file, token=token, settings=settings)

            def report(event: Progress, progress: UploadProgress = progress) -> None:  # on the loop
                if event.stage != "done":  # the outcome comes from finish() below
                    text = f":hourglass_flowing_sand: {escape_mrkdwn(event.text())}"
                    loop.call_soon_threadsafe(progress.update, text)

            result = await ingest_bytes(
                store, make_embedder(settings), data=data, filename=file.name, mimetype=file.mimetype,
                scope=scope, uploaded_by=user_id, slack_file_id=file.id, permalink=file.permalink,
                progress=report, max_bytes=max_file_bytes(settings))
        except Exception as exc:
            failure = failure_for(exc, log=log, doing=f"upload of {shared.get('id')}", lead=f"I couldn't add {title}.",
                                  generic=f"Sorry, something went wrong while adding {title}.")
            await progress.finish(failure_text(failure))
            if record_id is not None:
                await store.finish_turn(record_id, outcome="failed")
            continue
        verb = "Replaced" if result.replaced else "Added"
        await progress.finish(
            f":white_check_mark: {verb} *{escape_mrkdwn(result.title)}* (document {result.document_id}): "
            f"{result.chunks:,} chunk{'s' if result.chunks != 1 else ''} in {result.seconds:.1f} s. "
            f"Visible to {audience(result.scope)}.")
        if record_id is not None:
            await store.finish_turn(record_id, outcome="answered")
        results.append(result)
        if keep is not None:
            keep.append(Attachment(file.name, file.mimetype, data))
    return results


async def fetch_images(*, files: list[dict[str, Any]], client: AsyncWebClient, http: aiohttp.ClientSession,
                       settings: Settings) -> tuple[list[Attachment], list[str]]:
    """Download the images shared with a message for the model (files.info, then the guarded download):
    they never enter the knowledge base. Returns them and one sentence per image that could not be fetched."""
    assert settings.slack_bot_token is not None
    token = settings.slack_bot_token.get_secret_value()
    images: list[Attachment] = []
    notes: list[str] = []
    for shared in files:
        title = str(shared.get("name") or shared.get("title") or "image")
        try:
            file = await file_info(client, shared["id"])
            images.append(Attachment(file.name, file.mimetype, await download(http, file, token=token,
                                                                                settings=settings)))
        except KnowledgeError as exc:  # DownloadFailed, FileTooLarge, UnsafeFileHost, WrongContent
            log.warning("image %s not fetched: %s", shared.get("id"), type(exc).__name__)
            notes.append(f"I couldn't fetch {title}: {exc.detail or exc.__doc__}")
    return images, notes
