"""`threadbot console`: the Slack bot's agent, tools, history and usage in a terminal, as user `console`."""
from __future__ import annotations

import asyncio
import logging
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable

from bot.config import Settings
from bot.console_render import DIM, ITALIC, RESET, YELLOW, MarkdownLines, StreamWriter, strip_controls
from bot.conversation import GENERIC_FAILURE, Turn, reference_id
from bot.errors import ThreadbotError
from bot.llm.types import Message, TextBlock

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from knowledge.embed import Embedder

log = logging.getLogger(__name__)

CONSOLE_USER = "console"
CONSOLE_TEAM = "console"
CONSOLE_CHANNEL = "console"
UPLOAD_SCOPE = f"user:{CONSOLE_USER}"
PROMPT = "you> "
NO_ANSWER = "I don't have an answer to that."
INTERRUPTED = "(interrupted)"

HELP = """\
Type a message and press Enter; the answer streams in. Commands:
  /usage [team | U… | N]    token counts and cost (yours by default, N days)
  /knowledge list           documents in the knowledge base
  /knowledge search QUERY   what the document search finds
  /knowledge delete ID      remove a document
  /upload PATH              add a file to the knowledge base (private to the console)
  /help                     this text
  /exit                     quit (Ctrl-D does too; Ctrl-C stops an answer)"""

USAGE_HELP = ("/usage shows the console's usage (today, 7 and 30 days); /usage team shows everyone's, "
              "/usage U… one Slack user's; add a number of days, e.g. /usage 7.")

_SLACK_FAILURE = re.compile(r"^:warning:\s*")
_CODE_TICKS = re.compile(r"`([^`]*)`")
_DAYS = re.compile(r"^(\d{1,3})d?$", re.IGNORECASE)
_USER_ID = re.compile(r"^[UW][A-Z0-9]*[0-9][A-Z0-9]*$")
_COMMAND = re.compile(r"^/([a-z]+)(?:\s+(.*))?$", re.DOTALL)


class Screen:
    """Where console output goes. Answers go to stdout; in a pipe, everything else goes to stderr so
    stdout holds exactly the model's text."""

    def __init__(self, stdout: IO[str], stderr: IO[str], *, ansi: bool):
        self.stdout = stdout
        self.stderr = stderr
        self.ansi = ansi
        self.writer = StreamWriter(self._write, ansi=ansi, width=self.width)
        self.markdown = MarkdownLines(width=self.width)

    @staticmethod
    def width() -> int:
        return shutil.get_terminal_size((80, 24)).columns

    def _write(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def answer(self, text: str) -> None:
        self.writer.feed(text)

    def message(self, text: str) -> None:
        """A complete reply (help, reports, one-off messages), rendered at once."""
        self.writer.close()
        self._write((self.markdown.render_block(text) if self.ansi else text).rstrip("\n") + "\n")
        self.markdown.reset()

    def info(self, text: str) -> None:
        """Meta lines (thread id, tool progress, interruptions): dimmed, or on stderr in a pipe."""
        if self.ansi:
            self.writer.end_line()
            self._write(f"{DIM}{strip_controls(text)}{RESET}\n")
        else:
            self.stderr.write(text + "\n")
            self.stderr.flush()

    def notice(self, text: str) -> None:
        self.writer.close()
        self._write(f"\n{DIM}{ITALIC}{text}{RESET}\n" if self.ansi else f"\n{text}\n")

    def failure(self, message: str) -> None:
        self.writer.close()
        self._write(f"{YELLOW}{message}{RESET}\n" if self.ansi else message + "\n")


def terminal_failure(slack_text: str) -> str:
    """The failure line Conversations builds for Slack (":warning: … (ref `abc`)") in terminal words."""
    return "⚠ " + _CODE_TICKS.sub(r"\1", _SLACK_FAILURE.sub("", slack_text))


class ConsoleReply:
    """One answer in the terminal; the same interface as SlackReply (bot.conversation.Reply)."""

    def __init__(self, screen: Screen):
        self.screen = screen
        self.text = ""  # everything the model wrote in this turn
        self.round_text = ""  # text since the last tool round (not yet in stored history)
        self._separate = False
        self._status: str | None = None
        self.interrupted = False

    async def start(self) -> None:
        pass

    def append(self, text: str) -> None:
        if not text:
            return
        if self._separate and self.text:
            self.screen.writer.paragraph()
        self._separate = False
        self.text += text
        self.round_text += text
        self.screen.answer(text)

    def set_status(self, line: str | None) -> None:
        # The agent reports a tool twice (when it starts, then with its arguments): show each line once.
        if line and line != self._status:
            for part in line.splitlines():
                self.screen.info(f"… {part}")
        self._status = line

    def separate(self) -> None:
        self._separate = True
        self.round_text = ""

    async def finish(self, *, notice: str | None = None) -> None:
        if not self.text.strip():
            self.screen.answer(NO_ANSWER)
        self.screen.writer.close()
        if notice:
            self.screen.notice(notice)

    async def fail(self, message: str) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Ctrl-C: Conversations closes the turn as for a shutdown; the user asked for it, so
            # no failure message, just a mark where the answer stopped.
            self.interrupted = True
            self.screen.writer.close()
            self.screen.info(INTERRUPTED)
            return
        self.screen.failure(terminal_failure(message))

    async def say(self, text: str) -> None:
        self.screen.message(text)


@dataclass
class Console:
    """Turns console input lines into conversation turns and console commands."""

    runtime: "Runtime"
    screen: Screen
    thread_ts: str
    embedder_factory: Callable[[Settings], "Embedder"] | None = None
    exit_requested: bool = False
    _last_ts: float = field(default=0.0, repr=False)
    _embedder: "Embedder | None" = field(default=None, repr=False)

    @property
    def store(self):  # noqa: ANN201 - bot.store.Store
        return self.runtime.store

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
            self.screen.message(f"Unknown command /{name}. /help lists the commands.")
            return
        try:
            await handler(rest)
        except ThreadbotError as exc:
            self.screen.failure(f"⚠ {exc.user_message()}")

    # --- conversation -------------------------------------------------------------------------

    def _next_ts(self) -> str:
        # Message ts values must be unique and increasing, like Slack's.
        self._last_ts = max(time.time(), self._last_ts + 0.000001)
        return f"{self._last_ts:.6f}"

    def _conversation_id(self) -> int:
        return self.store.conversation_id(team_id=CONSOLE_TEAM, channel_id=CONSOLE_CHANNEL,
                                          thread_ts=self.thread_ts, user_id=CONSOLE_USER)

    async def converse(self, text: str) -> None:
        turn = Turn(team_id=CONSOLE_TEAM, channel_id=CONSOLE_CHANNEL, thread_ts=self.thread_ts,
                    user_id=CONSOLE_USER, text=text, ts=self._next_ts(), surface="console")
        reply = ConsoleReply(self.screen)
        try:
            await self.runtime.conversations.handle(turn, reply)
        except asyncio.CancelledError:  # Ctrl-C while the answer streams
            if not reply.interrupted:
                self.screen.writer.close()
                self.screen.info(INTERRUPTED)
            self._close_interrupted(reply.round_text)
            raise
        except Exception:  # anything Conversations didn't turn into a message itself
            ref = reference_id()
            log.exception("console turn failed ref=%s", ref)
            self.screen.failure(f"⚠ {GENERIC_FAILURE} (ref {ref})")

    def _close_interrupted(self, partial: str) -> None:
        """Keep stored history a valid request after Ctrl-C (DESIGN invariant 3): if Conversations
        did not close the turn itself, the user's message gets an answer holding what was shown."""
        conversation_id = self._conversation_id()
        last = self.store.history(conversation_id)[-1:]
        if last and last[0].message.role == "user":
            shown = partial.strip()
            text = f"{shown}\n\n{INTERRUPTED}" if shown else f"{INTERRUPTED} No answer was given."
            self.store.append_messages(conversation_id, [Message("assistant", [TextBlock(text)])])

    def earlier_messages(self) -> int:
        return len(self.store.history(self._conversation_id()))

    # --- commands -----------------------------------------------------------------------------

    async def cmd_help(self, rest: str) -> None:
        self.screen.message(HELP)

    async def cmd_exit(self, rest: str) -> None:
        self.exit_requested = True

    async def cmd_usage(self, rest: str) -> None:
        self.screen.message(usage_text(self.store, text=rest, now=datetime.now(timezone.utc)))

    async def cmd_knowledge(self, rest: str) -> None:
        verb, _, argument = rest.partition(" ")
        argument = argument.strip()
        if verb == "list" and not argument:
            self.screen.message(await asyncio.to_thread(self._list_documents))
        elif verb == "search" and argument:
            self.screen.message(await self._search(argument))
        elif verb == "delete" and argument.isdigit():
            self.screen.message(await asyncio.to_thread(self._delete, int(argument)))
        else:
            self.screen.message("Use /knowledge list, /knowledge search QUERY or /knowledge delete ID.")

    async def cmd_upload(self, rest: str) -> None:
        from knowledge.ingest import ingest_path_async

        if not rest:
            self.screen.message("Use /upload PATH, e.g. /upload ~/notes/handbook.md")
            return
        path = Path(rest.strip("'\"")).expanduser()
        if not path.is_file():
            self.screen.failure(f"⚠ There is no file at {path}.")
            return
        embedder = self.embedder()
        result = await ingest_path_async(
            self.store, embedder, path, scope=UPLOAD_SCOPE, uploaded_by=CONSOLE_USER,
            progress=lambda p: self.screen.info(p.text()) if p.stage != "done" else None,
            max_bytes=int(self.runtime.settings.max_file_mb * 1024 * 1024),
        )
        replaced = " (replacing the earlier copy)" if result.replaced else ""
        self.screen.message(f"Added {result.title}{replaced}: {result.chunks} chunks in {result.seconds:.1f} s, "
                            f"document {result.document_id}, scope {result.scope}.")

    def embedder(self) -> "Embedder":
        if self._embedder is None:
            if self.embedder_factory is None:
                from knowledge.embed import make_embedder

                self.embedder_factory = make_embedder
            self._embedder = self.embedder_factory(self.runtime.settings)
        return self._embedder

    def _list_documents(self) -> str:
        from knowledge.ingest import list_documents

        documents = list_documents(self.store, None)  # the console runs on the operator's own database
        if not documents:
            return "The knowledge base is empty. Add a file with /upload PATH."
        lines = [f"{len(documents)} document{'s' if len(documents) != 1 else ''}:"]
        for d in documents:
            added = datetime.fromtimestamp(d.created_at, timezone.utc).strftime("%Y-%m-%d")
            lines.append(f"  {d.id:>4}  {d.title} — {d.scope}, {d.chunk_count} chunks, added {added} by {d.uploaded_by}")
        return "\n".join(lines)

    def _delete(self, document_id: int) -> str:
        from knowledge.ingest import delete_document

        document = delete_document(self.store, document_id)
        return f"Deleted document {document.id} ({document.title})."

    async def _search(self, query: str) -> str:
        from knowledge.search import scopes_for, search_async

        # What the bot's search_docs tool sees from the console, plus the console's own uploads.
        scopes = list(dict.fromkeys([*scopes_for(user_id=CONSOLE_USER, channel_id=CONSOLE_CHANNEL), UPLOAD_SCOPE]))
        hits = await search_async(self.store, self.embedder(), query, scopes=scopes, k=5)
        if not hits:
            return f"Nothing in {', '.join(scopes)} matched {query!r}."
        lines = []
        for number, hit in enumerate(hits, start=1):
            where = f", {hit.location}" if hit.location else ""
            snippet = " ".join(hit.text.split())
            snippet = snippet if len(snippet) <= 200 else snippet[:199] + "…"
            lines += [f"[{number}] {hit.title}{where} — document {hit.document_id}, score {hit.score:.4f}",
                      f"    {snippet}"]
        return "\n".join(lines)


def usage_text(store, *, text: str, now: datetime) -> str:  # noqa: ANN001 - bot.store.Store
    """The /usage reply as plain text. The console is the operator's own database, so it may also
    show the team's or any user's usage (Slack's /usage limits that to admins)."""
    from bot.usage_report import MAX_DAYS, build_report, render_text

    target: str | None = CONSOLE_USER
    days = 30
    for word in text.split():
        lowered = word.lower()
        if lowered in ("help", "?"):
            return USAGE_HELP
        if lowered in ("team", "workspace", "all"):
            target = None
        elif lowered in ("me", CONSOLE_USER):
            target = CONSOLE_USER
        elif match := _DAYS.match(word):
            days = int(match.group(1))
            if not 1 <= days <= MAX_DAYS:
                return f"Pick between 1 and {MAX_DAYS} days."
        elif _USER_ID.match(word):
            target = word
        else:
            return f"I didn't understand {word!r}. {USAGE_HELP}"
    return render_text(build_report(store, user_id=target, days=days, now=now))


def new_thread_ts() -> str:
    """A console thread id, shaped like a Slack ts so it sorts by time."""
    return f"{time.time():.6f}"


def run_console(settings: Settings, *, thread: str | None = None, stdin: IO[str] | None = None,
                stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """The console's read–answer loop. Ctrl-D, /exit or Ctrl-C at the prompt end it with status 0;
    Ctrl-C during an answer stops that answer and returns to the prompt."""
    from bot.runtime import Runtime

    stdin, stdout, stderr = stdin or sys.stdin, stdout or sys.stdout, stderr or sys.stderr
    for stream in (stdout, stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")  # a non-UTF-8 terminal must not crash an answer
    interactive = stdin.isatty()
    screen = Screen(stdout, stderr, ansi=stdout.isatty())
    thread_ts = thread or new_thread_ts()
    with asyncio.Runner() as runner:
        runtime = runner.run(Runtime.create(settings))
        console = Console(runtime=runtime, screen=screen, thread_ts=thread_ts)
        try:
            _greet(console, resumed=thread is not None, interactive=interactive)
            while not console.exit_requested:
                line = _read_line(stdin, stdout, stderr, interactive=interactive)
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
                runner.run(runtime.aclose())
            except (Exception, KeyboardInterrupt):
                log.debug("console shutdown was interrupted", exc_info=True)
    return 0


def _greet(console: Console, *, resumed: bool, interactive: bool) -> None:
    thread_ts = console.thread_ts
    earlier = console.earlier_messages() if resumed else 0
    model = console.runtime.settings.model
    if resumed:
        state = (f"resuming thread {thread_ts} ({earlier} earlier messages)" if earlier
                 else f"thread {thread_ts} has no earlier messages; starting it")
    else:
        state = f"thread {thread_ts} (resume it later with --thread {thread_ts})"
    console.screen.info(f"threadbot console — {model}, {state}")
    if interactive:
        console.screen.info("Type /help for commands; Ctrl-D quits, Ctrl-C stops an answer.")


def _read_line(stdin: IO[str], stdout: IO[str], stderr: IO[str], *, interactive: bool) -> str | None:
    """The next input line, or None at end of input (Ctrl-D) or Ctrl-C at the prompt."""
    try:
        if interactive and stdout.isatty() and stdin is sys.stdin:
            try:
                import readline  # noqa: F401  # line editing and history for input()
            except ImportError:
                pass
            return input(PROMPT)
        if interactive:
            stderr.write(PROMPT)
            stderr.flush()
        line = stdin.readline()
        return line.rstrip("\n") if line else None
    except EOFError:
        if interactive:
            stdout.write("\n")
        return None
    except KeyboardInterrupt:
        if interactive:
            stdout.write("\n")
        return None


class _NoTraceback(logging.Formatter):
    """Console logs share the terminal with the chat: keep each record to one line."""

    def formatException(self, ei) -> str:  # noqa: ANN001, N802 - logging's own signature
        return ""

    def format(self, record: logging.LogRecord) -> str:
        record.exc_text = None
        saved, record.exc_info = record.exc_info, None
        try:
            return super().format(record)
        finally:
            record.exc_info = saved


def quiet_logging(*, level_set_explicitly: bool) -> None:
    """Only warnings (with their ref ids) reach the terminal, one line each, unless the user asked
    for a log level."""
    if level_set_explicitly:
        return
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    for handler in root.handlers:
        handler.setFormatter(_NoTraceback("%(levelname)s %(name)s: %(message)s"))
