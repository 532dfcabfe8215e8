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
from bot.conversation import reference_id
from bot.mrkdwn import escape_mrkdwn
from bot.store import Store
from knowledge.embed import make_embedder
from knowledge.errors import FileTooLarge, KnowledgeError, WrongContent
from knowledge.ingest import IngestResult, Progress, ingest_bytes_async
from knowledge.search import scope_for_upload

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
DOWNLOAD_TIMEOUT_S = 120


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
    """Invariant 6: the bot token only goes to SLACK_API_URL's host and to slack.com and its subdomains."""
    host = (urlparse(url).hostname or "").lower()
    api_host = (urlparse(settings.slack_api_url).hostname or "").lower()
    return bool(host) and (host == api_host or host == "slack.com" or host.endswith(".slack.com"))


def describe_scope(scope: str) -> str:
    if scope == "workspace":
        return "everyone in the workspace"
    if scope.startswith("user:"):
        return "only you"
    return "this channel"


async def file_info(client: AsyncWebClient, file_id: str) -> SharedFile:
    try:
        response = await client.files_info(file=file_id)
    except SlackApiError as exc:
        raise DownloadFailed(f"Slack wouldn't give me that file ({exc.response.get('error')}).") from None
    data: dict[str, Any] = response["file"]
    url = data.get("url_private_download") or data.get("url_private")
    if not url:
        raise DownloadFailed("Slack didn't give me a download link for that file (is it an external file?).")
    return SharedFile(id=data["id"], name=data.get("name") or data.get("title") or data["id"],
                      mimetype=data.get("mimetype"), size=int(data.get("size") or 0), url=url,
                      permalink=data.get("permalink"))


async def download(http: aiohttp.ClientSession, file: SharedFile, *, token: str, settings: Settings) -> bytes:
    """Stream the file with the bot token, never past the size limit, never to a non-Slack host."""
    max_bytes = int(settings.max_file_mb * 1024 * 1024)
    if file.size > max_bytes:
        raise FileTooLarge(f"{file.name} is {file.size / 1_048_576:.1f} MB; the limit is {settings.max_file_mb:g} MB.")
    url = file.url
    for _ in range(MAX_REDIRECTS + 1):
        if not is_slack_host(url, settings):
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
            data = bytearray()
            async for piece in response.content.iter_chunked(1 << 16):
                data += piece
                if len(data) > max_bytes:
                    raise FileTooLarge(f"{file.name} is larger than the {settings.max_file_mb:g} MB limit.")
            return bytes(data)
    raise DownloadFailed("Slack redirected the download too many times.")


class UploadProgress:
    """One Slack message per shared file, edited through the stages (about once a second at most)."""

    def __init__(self, client: AsyncWebClient, *, channel: str, thread_ts: str, interval_s: float = 1.0):
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.interval_s = interval_s
        self.ts: str | None = None
        self._last_sent = 0.0
        self._pending: str | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, text: str) -> None:
        response = await self.client.chat_postMessage(channel=self.channel, thread_ts=self.thread_ts, text=text)
        self.ts = response["ts"]
        self._last_sent = asyncio.get_running_loop().time()

    def update(self, text: str) -> None:
        """Called often (from the loop); only the newest text is sent, at most once per interval."""
        self._pending = text
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self._last_sent + self.interval_s - loop.time()))
        text, self._pending = self._pending, None
        if text is not None:
            await self._edit(text)

    async def finish(self, text: str) -> None:
        if self._task is not None:
            self._task.cancel()
        self._pending = None
        await self._edit(text, final=True)

    async def _edit(self, text: str, *, final: bool = False) -> None:
        self._last_sent = asyncio.get_running_loop().time()
        for attempt in range(5 if final else 1):
            try:
                await self.client.chat_update(channel=self.channel, ts=self.ts, text=text)
                return
            except SlackApiError as exc:
                if exc.response.status_code != 429 or attempt == 4 or not final:
                    log.warning("progress edit failed: %s", exc.response.get("error"))
                    return
                await asyncio.sleep(min(float(exc.response.headers.get("Retry-After", 1)), 30))


async def ingest_shared_files(*, files: list[dict[str, Any]], client: AsyncWebClient, http: aiohttp.ClientSession,
                              store: Store, settings: Settings, user_id: str, channel_id: str,
                              thread_ts: str) -> list[IngestResult]:
    """Add every file shared with a message to the knowledge base; each gets its own progress message
    and ends with either "Added …" or one clear sentence (with a reference id) saying why not."""
    assert settings.slack_bot_token is not None
    token = settings.slack_bot_token.get_secret_value()
    scope = scope_for_upload(user_id=user_id, channel_id=channel_id)
    loop = asyncio.get_running_loop()
    results = []
    for shared in files:
        name = shared.get("name") or shared.get("title") or "file"
        progress = UploadProgress(client, channel=channel_id, thread_ts=thread_ts)
        await progress.start(f":inbox_tray: Downloading {name}…")
        try:
            file = await file_info(client, shared["id"])
            data = await download(http, file, token=token, settings=settings)

            def report(event: Progress) -> None:  # runs in the ingest worker thread
                loop.call_soon_threadsafe(progress.update, f":hourglass_flowing_sand: {event.text()}")

            result = await ingest_bytes_async(
                store, make_embedder(settings), data=data, filename=file.name, mimetype=file.mimetype,
                scope=scope, uploaded_by=user_id, slack_file_id=file.id, permalink=file.permalink,
                progress=report, max_bytes=int(settings.max_file_mb * 1024 * 1024))
        except KnowledgeError as exc:
            ref = reference_id()
            log.warning("upload of %s failed ref=%s: %s: %s", name, ref, type(exc).__name__, exc)
            await progress.finish(f":warning: {name}: {exc.user_message()} (ref `{ref}`)")
            continue
        except Exception:
            ref = reference_id()
            log.exception("upload of %s failed ref=%s", name, ref)
            await progress.finish(f":warning: Sorry, something went wrong while adding {name}. (ref `{ref}`)")
            continue
        verb = "Replaced" if result.replaced else "Added"
        await progress.finish(
            f":white_check_mark: {verb} *{escape_mrkdwn(result.title)}* (document {result.document_id}): {result.chunks} chunks "
            f"in {result.seconds:.1f} s. Visible to {describe_scope(result.scope)}.")
        results.append(result)
    return results
