"""Where console output goes: answers on stdout (rendered in a terminal), everything else beside them."""
from __future__ import annotations

import logging
import shutil
from typing import IO

from bot.console.render import DIM, ITALIC, RESET, YELLOW, MarkdownLines, StreamWriter, strip_controls


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

    def failure(self, message: str, *, ref: str | None = None) -> None:
        """A failure in terminal words: "⚠ <message>", with the reference id that is in the log (invariant 5)."""
        line = f"⚠ {message}" + (f" (ref {ref})" if ref else "")
        self.writer.close()
        self._write(f"{YELLOW}{line}{RESET}\n" if self.ansi else line + "\n")


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
