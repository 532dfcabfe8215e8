"""`threadbot console`: the Slack bot's agent, tools, history and usage in a terminal, as user `console`."""
from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable

from bot.config import Settings
from bot.console.commands import (
    CONSOLE_CHANNEL, CONSOLE_TEAM, CONSOLE_USER, HELP, UPLOAD_SCOPE, delete_text, list_text, search_text, usage_text,
)
from bot.console.reply import INTERRUPTED, ConsoleReply
from bot.console.screen import Screen, log_to_screen
from bot.console.terminal import forward_sigint_to_main_thread, read_line, show_prompt
from bot.console.approval import ConsoleApproval
from bot.conversation import GENERIC_FAILURE, Turn
from bot.conversation.approvals import Approve
from bot.errors import ThreadbotError, failure_for
from bot.conversation.media import Attachment, is_image
from bot.messages import Message, TextBlock

if TYPE_CHECKING:
    from bot.services import Services
    from knowledge.embed import Embedder

log = logging.getLogger(__name__)

_COMMAND = re.compile(r"^/([a-z]+)(?:\s+(.*))?$", re.DOTALL)


@dataclass
class Console:
    """Turns console input lines into conversation turns and console commands."""

    services: "Services"
    screen: Screen
    thread_ts: str
    embedder_factory: Callable[[Settings], "Embedder"] | None = None
    approve: Approve | None = None  # the y/N question before a tool that acts
    exit_requested: bool = False
    _last_ts: float = field(default=0.0, repr=False)
    _embedder: "Embedder | None" = field(default=None, repr=False)
    # Images from /upload, sent with the next message (they never enter the knowledge base).
    _images: list[Attachment] = field(default_factory=list, repr=False)

    @property
    def store(self):  # noqa: ANN201 - bot.store.Store
        return self.services.store

    async def handle_line(self, line: str) -> None:
        text = line.strip()
        if not text:
            return
        command = _COMMAND.match(text)
        if command is None:
            await self.converse(text)
            return
        name, rest = command.group(1), (command.group(2) or "").strip()
        handler = {
            "usage": self.cmd_usage, "knowledge": self.cmd_knowledge, "upload": self.cmd_upload,
            "help": self.cmd_help, "exit": self.cmd_exit, "quit": self.cmd_exit,
        }.get(name)
        if handler is None:
            self.screen.message(f"Unknown command /{name}. /help lists the commands.", markdown=False)
            return
        try:
            await handler(rest)
        except ThreadbotError as exc:
            self.screen.failure(exc.user_message())

    # --- conversation -------------------------------------------------------------------------

    def _next_ts(self) -> str:
        # Message ts values must be unique and increasing, like Slack's.
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    async def _conversation_id(self) -> int:
        return await self.store.conversation_id(team_id=CONSOLE_TEAM, channel_id=CONSOLE_CHANNEL,
                                          thread_ts=self.thread_ts, user_id=CONSOLE_USER)

    async def converse(self, text: str) -> None:
        images, self._images = self._images, []
        turn = Turn(team_id=CONSOLE_TEAM, channel_id=CONSOLE_CHANNEL, thread_ts=self.thread_ts,
                    user_id=CONSOLE_USER, text=text, ts=self._next_ts(), surface="console", attachments=images)
        reply = ConsoleReply(self.screen, self.services.registry)
        try:
            await self.services.conversations.handle(turn, reply, approve=self.approve)
        except asyncio.CancelledError:  # Ctrl-C while the answer streams
            if not reply.interrupted:
                self.screen.writer.close()
                self.screen.info(INTERRUPTED)
            await self._close_interrupted(reply.round_text)
            raise
        except Exception as exc:  # anything Conversations didn't turn into a message itself
            failure = failure_for(exc, log=log, doing="console turn", generic=GENERIC_FAILURE)
            self.screen.failure(failure.message, ref=failure.ref)

    async def _close_interrupted(self, partial: str) -> None:
        """Keep stored history a valid request after Ctrl-C (invariant 3): if Conversations
        did not close the turn itself, the user's message gets an answer holding what was shown."""
        conversation_id = await self._conversation_id()
        last = (await self.store.history(conversation_id))[-1:]
        if last and last[0].message.role == "user":
            shown = partial.strip()
            text = f"{shown}\n\n{INTERRUPTED}" if shown else f"{INTERRUPTED} No answer was given."
            await self.store.append_messages(conversation_id, [Message("assistant", [TextBlock(text)])])

    async def earlier_messages(self) -> int:
        return len(await self.store.history(await self._conversation_id()))

    # --- commands -----------------------------------------------------------------------------

    async def cmd_help(self, rest: str) -> None:
        self.screen.message(HELP, markdown=False)

    async def cmd_exit(self, rest: str) -> None:
        self.exit_requested = True

    async def cmd_usage(self, rest: str) -> None:
        self.screen.message(await usage_text(self.store, text=rest, now=datetime.now(timezone.utc)), markdown=False)

    async def cmd_knowledge(self, rest: str) -> None:
        verb, _, argument = rest.partition(" ")
        argument = argument.strip()
        if verb == "list" and not argument:
            self.screen.message(await list_text(self.store), markdown=False)
        elif verb == "search" and argument:
            self.screen.message(await search_text(self.store, self.embedder(), argument), markdown=False)
        elif verb == "delete" and argument.isdigit():
            self.screen.message(await delete_text(self.store, int(argument)), markdown=False)
        else:
            self.screen.message("Use /knowledge list, /knowledge search QUERY or /knowledge delete ID.", markdown=False)

    async def cmd_upload(self, rest: str) -> None:
        from knowledge.ingest import ingest_path

        if not rest:
            self.screen.message("Use /upload PATH, e.g. /upload ~/notes/handbook.md", markdown=False)
            return
        path = Path(rest.strip("'\"")).expanduser()
        if not path.is_file():
            self.screen.failure(f"There is no file at {path}.")
            return
        if is_image(path.name, None):
            limit_mb = self.services.settings.max_file_mb
            if path.stat().st_size > limit_mb * 1024 * 1024:
                self.screen.failure(f"{path.name} is larger than the {limit_mb:g} MB limit.")
                return
            self._images.append(Attachment(path.name, None, await asyncio.to_thread(path.read_bytes)))
            self.screen.message(f"Attached {path.name}: it goes to the model with your next message.",
                                markdown=False)
            return
        embedder = self.embedder()
        result = await ingest_path(
            self.store, embedder, path, scope=UPLOAD_SCOPE, uploaded_by=CONSOLE_USER,
            progress=lambda p: self.screen.info(p.text()) if p.stage != "done" else None,
            max_bytes=int(self.services.settings.max_file_mb * 1024 * 1024),
        )
        replaced = " (replacing the earlier copy)" if result.replaced else ""
        self.screen.message(f"Added {result.title}{replaced}: {result.chunks} chunks in {result.seconds:.1f} s, "
                            f"document {result.document_id}, scope {result.scope}.", markdown=False)

    def embedder(self) -> "Embedder":
        if self._embedder is None:
            if self.embedder_factory is None:
                from knowledge.embed import make_embedder

                self.embedder_factory = make_embedder
            self._embedder = self.embedder_factory(self.services.settings)
        return self._embedder


def new_thread_ts() -> str:
    """A console thread id, shaped like a Slack ts so it sorts by time."""
    return f"{time.time():.6f}"


def run_console(settings: Settings, *, thread: str | None = None, log_level_set: bool = False,
                stdin: IO[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """The console's read–answer loop. Ctrl-D, /exit or Ctrl-C at the prompt end it with status 0;
    Ctrl-C during an answer stops that answer and returns to the prompt."""
    from bot.services import Services

    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    for stream in (stdout, stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")  # a non-UTF-8 terminal must not crash an answer
    interactive = stdin.isatty()
    screen = Screen(stdout, stderr, ansi=stdout.isatty())
    log_to_screen(screen, level_set_explicitly=log_level_set)
    thread_ts = thread or new_thread_ts()
    with asyncio.Runner() as runner:
        if interactive:
            forward_sigint_to_main_thread()
        services = runner.run(Services.create(settings))
        approve = ConsoleApproval(screen, stdin, timeout_s=settings.approval_timeout_s)
        console = Console(services=services, screen=screen, thread_ts=thread_ts, approve=approve)
        try:
            runner.run(_greet(console, resumed=thread is not None, interactive=interactive))
            while not console.exit_requested:
                # A line a timed-out approval question's read took comes first (bot/console/approval.py).
                line = approve.next_line(lambda: read_line(stdin, stdout, stderr, interactive=interactive),
                                         prompt=lambda: show_prompt(stderr, interactive=interactive))
                if line is None:
                    break
                try:
                    runner.run(console.handle_line(line))
                except (KeyboardInterrupt, asyncio.CancelledError):
                    continue  # the answer was stopped and closed; a second Ctrl-C exits at the prompt
        except KeyboardInterrupt:  # a second Ctrl-C while the first one was being handled
            pass
        finally:
            screen.writer.close()
            if interactive and stdout.isatty():
                screen.info(f"Resume this conversation with: threadbot console --thread {thread_ts}")
            try:
                runner.run(services.aclose())
            except (Exception, KeyboardInterrupt):
                log.debug("console shutdown was interrupted", exc_info=True)
    return 0


async def _greet(console: Console, *, resumed: bool, interactive: bool) -> None:
    thread_ts = console.thread_ts
    earlier = await console.earlier_messages() if resumed else 0
    model = console.services.settings.model
    if resumed:
        state = (f"resuming thread {thread_ts} ({earlier} earlier messages)" if earlier
                 else f"thread {thread_ts} has no earlier messages; starting it")
    else:
        state = f"thread {thread_ts} (resume it later with --thread {thread_ts})"
    console.screen.info(f"threadbot console — {model}, {state}")
    if interactive:
        console.screen.info("Type /help for commands; Ctrl-D quits, Ctrl-C stops an answer.")
