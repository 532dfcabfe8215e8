"""`threadbot console`: the Slack bot's agent, tools, history and usage in a terminal, as user `console`."""
from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Sequence

from bot.config import Settings
from bot.console.commands import (
    CONSOLE_CHANNEL, CONSOLE_TEAM, CONSOLE_USER, HELP, UPLOAD_SCOPE, delete_text, list_text, search_text, usage_text,
)
from bot.console.render import DIM, ITALIC, RESET, YELLOW, MarkdownLines, StreamWriter, strip_controls
from bot.conversation import GENERIC_FAILURE, Turn
from bot.errors import Failure, ThreadbotError, reference_id
from bot.messages import Message, TextBlock, ToolUseBlock
from tools.registry import Registry

if TYPE_CHECKING:
    from bot.services import Runtime
    from knowledge.embed import Embedder

log = logging.getLogger(__name__)

PROMPT = "you> "
NO_ANSWER = "I don't have an answer to that."
INTERRUPTED = "(interrupted)"
POKES, POKE_INTERVAL_S = 20, 0.05  # see forward_sigint_to_main_thread

_SLACK_FAILURE = re.compile(r"^:warning:\s*")
_CODE_TICKS = re.compile(r"`([^`]*)`")
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

    def message(self, text: str, *, markdown: bool = True) -> None:
        """A complete reply at once: the bot's own sentences are Markdown; reports and listings are
        plain text (a model id with underscores must not turn italic)."""
        self.writer.close()
        if self.ansi:
            text = self.markdown.render_block(text) if markdown else strip_controls(text)
        self._write(text.rstrip("\n") + "\n")
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

    def __init__(self, screen: Screen, registry: Registry | None = None):
        self.screen = screen
        self.registry = registry if registry is not None else Registry()  # the tools' declared statuses
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

    def tools_started(self, tool_uses: Sequence[ToolUseBlock]) -> None:
        self.set_status("\n".join(self.registry.status_line(u.name, u.input) for u in tool_uses))

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

    async def fail(self, failure: Failure) -> None:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            # Ctrl-C: Conversations closes the turn as for a shutdown; the user asked for it, so
            # no failure message, just a mark where the answer stopped.
            self.interrupted = True
            self.screen.writer.close()
            self.screen.info(INTERRUPTED)
            return
        self.screen.failure(f"⚠ {failure.message} (ref {failure.ref})")

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
            self.screen.message(f"Unknown command /{name}. /help lists the commands.", markdown=False)
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
        reply = ConsoleReply(self.screen, self.runtime.registry)
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
        """Keep stored history a valid request after Ctrl-C (invariant 3): if Conversations
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
        self.screen.message(HELP, markdown=False)

    async def cmd_exit(self, rest: str) -> None:
        self.exit_requested = True

    async def cmd_usage(self, rest: str) -> None:
        self.screen.message(usage_text(self.store, text=rest, now=datetime.now(timezone.utc)), markdown=False)

    async def cmd_knowledge(self, rest: str) -> None:
        verb, _, argument = rest.partition(" ")
        argument = argument.strip()
        if verb == "list" and not argument:
            self.screen.message(await asyncio.to_thread(list_text, self.store), markdown=False)
        elif verb == "search" and argument:
            self.screen.message(await search_text(self.store, self.embedder(), argument), markdown=False)
        elif verb == "delete" and argument.isdigit():
            self.screen.message(await asyncio.to_thread(delete_text, self.store, int(argument)), markdown=False)
        else:
            self.screen.message("Use /knowledge list, /knowledge search QUERY or /knowledge delete ID.", markdown=False)

    async def cmd_upload(self, rest: str) -> None:
        from knowledge.ingest import ingest_path_async

        if not rest:
            self.screen.message("Use /upload PATH, e.g. /upload ~/notes/handbook.md", markdown=False)
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
                            f"document {result.document_id}, scope {result.scope}.", markdown=False)

    def embedder(self) -> "Embedder":
        if self._embedder is None:
            if self.embedder_factory is None:
                from knowledge.embed import make_embedder

                self.embedder_factory = make_embedder
            self._embedder = self.embedder_factory(self.runtime.settings)
        return self._embedder


def new_thread_ts() -> str:
    """A console thread id, shaped like a Slack ts so it sorts by time."""
    return f"{time.time():.6f}"


def run_console(settings: Settings, *, thread: str | None = None, log_level_set: bool = False,
                stdin: IO[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """The console's read–answer loop. Ctrl-D, /exit or Ctrl-C at the prompt end it with status 0;
    Ctrl-C during an answer stops that answer and returns to the prompt."""
    from bot.services import Runtime

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


def forward_sigint_to_main_thread() -> None:
    """Make Ctrl-C at the prompt work although the SDKs keep worker threads.

    The kernel may deliver SIGINT to any thread, and even in the main thread it can land just before
    readline blocks in select(). Either way Python only notes it, and the main thread, waiting in
    input(), never wakes up. A watcher thread learns of every signal through the wakeup fd and pokes
    the main thread with SIGUSR1 (a no-op handler) for a moment: the interrupted select() makes Python
    run the pending SIGINT handler there, raising KeyboardInterrupt as at a normal prompt.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.signal(signal.SIGUSR1, lambda *_: None)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def watch() -> None:
        while True:
            if signal.SIGINT in os.read(read_fd, 64):
                for _ in range(POKES):
                    signal.pthread_kill(main_thread, signal.SIGUSR1)
                    time.sleep(POKE_INTERVAL_S)

    threading.Thread(target=watch, name="sigint-forwarder", daemon=True).start()


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

    def format(self, record: logging.LogRecord) -> str:
        saved = record.exc_info, record.exc_text
        record.exc_info, record.exc_text = None, None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text = saved


class _ScreenLog(logging.Handler):
    """Log records as dimmed lines between answers (on stderr in a pipe), never mid-line."""

    def __init__(self, screen: Screen):
        super().__init__()
        self.screen = screen

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.screen.info(self.format(record))
        except Exception:
            self.handleError(record)


def log_to_screen(screen: Screen, *, level_set_explicitly: bool) -> None:
    """Only warnings (with their ref ids) reach the console, one line each, unless the user chose a
    log level (THREADBOT_LOG_LEVEL), which also keeps tracebacks."""
    root = logging.getLogger()
    handler = _ScreenLog(screen)
    if level_set_explicitly:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        root.setLevel(logging.WARNING)
        handler.setFormatter(_NoTraceback("%(levelname)s %(name)s: %(message)s"))
    for old in [h for h in root.handlers if isinstance(h, logging.StreamHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
