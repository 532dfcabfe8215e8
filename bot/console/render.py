"""Terminal output for the console: Markdown → simple ANSI, and a streaming writer that renders line by line."""
from __future__ import annotations

import re
import unicodedata
from typing import Callable

BOLD, DIM, ITALIC, UNDERLINE, STRIKE, CYAN, YELLOW, RESET = (
    "\x1b[1m", "\x1b[2m", "\x1b[3m", "\x1b[4m", "\x1b[9m", "\x1b[36m", "\x1b[33m", "\x1b[0m",
)

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_QUOTE = re.compile(r"^\s*>\s?(.*)$")
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_INLINE = [
    (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__"), BOLD),
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])|(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])"), ITALIC),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), STRIKE),
]
_LINK = re.compile(r"\[([^\]\n]+)\]\((\S+?)\)")
# Model text is data: in a terminal, escape sequences in it must not move the cursor or recolour.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_controls(text: str) -> str:
    return _CONTROL.sub("", text)


def visible_width(text: str) -> int:
    """Terminal columns `text` takes (ANSI sequences excluded, wide characters counted twice)."""
    plain = _ANSI.sub("", text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1
               for c in plain)


def render_inline(text: str) -> str:
    """Bold, italic, strike-through, links and code spans inside one line."""
    pieces: list[str] = []
    last = 0
    for match in _CODE_SPAN.finditer(text):  # nothing is formatted inside a code span
        pieces.append(_emphasis(text[last:match.start()]))
        pieces.append(f"{CYAN}{match.group(2).strip()}{RESET}")
        last = match.end()
    pieces.append(_emphasis(text[last:]))
    return "".join(pieces)


def _emphasis(text: str) -> str:
    for pattern, style in _INLINE:
        text = pattern.sub(lambda m, s=style: f"{s}{m.group(1) or m.group(2)}{RESET}", text)
    return _LINK.sub(lambda m: f"{UNDERLINE}{m.group(1)}{RESET} {DIM}({m.group(2)}){RESET}"
                     if m.group(1) != m.group(2) else f"{UNDERLINE}{m.group(1)}{RESET}", text)


class MarkdownLines:
    """Renders Markdown one complete line at a time; remembers whether it is inside a code fence."""

    def __init__(self, *, width: Callable[[], int] = lambda: 80):
        self.width = width
        self.in_fence = False

    def render(self, line: str) -> str:
        line = strip_controls(line)
        if _FENCE.match(line):
            self.in_fence = not self.in_fence
            return f"{DIM}{line}{RESET}"
        if self.in_fence:
            return f"{CYAN}{line}{RESET}" if line else line
        if match := _HEADING.match(line):
            level, title = len(match.group(1)), render_inline(match.group(2))
            return f"{BOLD}{UNDERLINE}{title}{RESET}" if level == 1 else f"{BOLD}{title}{RESET}"
        if _RULE.match(line):
            return f"{DIM}{'─' * min(self.width(), 40)}{RESET}"
        if match := _BULLET.match(line):
            return f"{match.group(1)}• {render_inline(match.group(2))}"
        if match := _QUOTE.match(line):
            return f"{DIM}│{RESET} {render_inline(match.group(1))}"
        return render_inline(line)

    def render_block(self, text: str) -> str:
        """A whole message at once (help, /usage, one-off replies)."""
        return "\n".join(self.render(line) for line in text.split("\n"))

    def reset(self) -> None:
        self.in_fence = False


class StreamWriter:
    """Writes streamed Markdown deltas to a terminal or a pipe.

    Plain mode writes every delta exactly as the model wrote it. ANSI mode shows the incomplete line
    raw as it grows (so streaming is visible) and redraws it rendered once its newline arrives.
    """

    def __init__(self, write: Callable[[str], None], *, ansi: bool, width: Callable[[], int] = lambda: 80):
        self.write = write
        self.ansi = ansi
        self.width = width
        self.lines = MarkdownLines(width=width)
        self.pending = ""  # the incomplete line already on screen (raw), ANSI mode only
        self.written = ""  # the tail of what went out, to know where lines and paragraphs end

    def feed(self, text: str) -> None:
        if not text:
            return
        if not self.ansi:
            self._out(text)
            return
        text = text.replace("\r\n", "\n")
        *complete, rest = text.split("\n")
        for piece in complete:
            self._complete_line(self.pending + piece)
            self.pending = ""
        if rest:
            raw = strip_controls(rest)
            self.pending += raw
            self._out(raw)

    def end_line(self) -> None:
        """Make sure the next output starts on a fresh line (rendering a pending partial line)."""
        if self.ansi and self.pending:
            self._complete_line(self.pending)
            self.pending = ""
        elif self.written and not self.written.endswith("\n"):
            self._out("\n")

    def paragraph(self) -> None:
        """End the current paragraph with a blank line, unless output is already at one."""
        self.end_line()
        if self.written and not self.written.endswith("\n\n"):
            self._out("\n")

    def close(self) -> None:
        self.end_line()
        self.lines.reset()
        self.written = ""

    def _complete_line(self, raw: str) -> None:
        rendered = self.lines.render(raw)
        if self.pending and rendered == self.pending:
            self._out("\n")  # nothing to restyle: keep what is on screen
            return
        if self.pending:
            self._erase(self.pending)
        self._out(rendered + "\n")

    def _erase(self, raw: str) -> None:
        # The raw partial line may have wrapped: go back to its first row and clear from there.
        rows = max(1, -(-visible_width(raw) // max(1, self.width())))
        self._out("\r" + (f"\x1b[{rows - 1}F" if rows > 1 else "") + "\x1b[J")

    def _out(self, text: str) -> None:
        self.write(text)
        self.written = (self.written + text)[-2:]
