"""Terminal output for the console: Markdown styled by rich, one complete line at a time so answers stream."""
from __future__ import annotations

import io
import re
import unicodedata
from typing import Callable

from rich.console import Console
from rich.markdown import Heading, Markdown
from rich.text import Text
from rich.theme import Theme

# The console's own lines (meta, notices, failures) around the rendered answer.
DIM, ITALIC, YELLOW, RESET = "\x1b[2m", "\x1b[3m", "\x1b[33m", "\x1b[0m"

# Plain SGR styles that read on dark and light terminals alike: no background blocks, no colours for prose.
THEME = Theme({
    "markdown.code": "cyan",
    "markdown.code_block": "cyan",
    "markdown.fence": "dim",
    "markdown.h1": "bold underline",
    **{f"markdown.h{level}": "bold" for level in range(2, 7)},
    "markdown.item.bullet": "none",
    "markdown.item.number": "none",
    "markdown.block_quote": "none",
    "markdown.link": "underline",
    "markdown.link_url": "dim",
    "markdown.hr": "dim",
})

_FENCE = re.compile(r"^\s*(```|~~~)")
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


class _LeftHeading(Heading):
    """Headings flush left like the rest of the answer (rich centres an h1)."""

    LEVEL_ALIGN = {f"h{level}": "left" for level in range(1, 7)}


class _AnswerMarkdown(Markdown):
    elements = {**Markdown.elements, "heading_open": _LeftHeading}


class MarkdownLines:
    """Renders Markdown one complete line at a time with rich; remembers whether it is inside a code fence
    (a fence spans lines, so it is the one construct tracked here rather than by rich's parser)."""

    def __init__(self, *, width: Callable[[], int] = lambda: 80):
        self.width = width
        self.in_fence = False
        self._out = io.StringIO()
        self._console = Console(file=self._out, force_terminal=True, color_system="standard", theme=THEME,
                                highlight=False, markup=False, emoji=False, legacy_windows=False, width=80)

    def render(self, line: str) -> str:
        line = strip_controls(line)
        if _FENCE.match(line):
            self.in_fence = not self.in_fence
            return self._styled(line, "markdown.fence")
        if self.in_fence:
            return self._styled(line, "markdown.code_block") if line else line
        content = line.lstrip()
        if not content:
            return ""
        # Indentation is kept as written (a nested bullet stays nested) instead of becoming a code block.
        indent = line[: len(line) - len(content)]
        rows = self._print(_AnswerMarkdown(content, hyperlinks=False), width=self.width() - visible_width(indent))
        return "\n".join(indent + row for row in rows)

    def render_block(self, text: str) -> str:
        """A whole message at once (help, one-off replies)."""
        return "\n".join(self.render(line) for line in text.split("\n"))

    def reset(self) -> None:
        self.in_fence = False

    def _styled(self, line: str, style: str) -> str:
        return "\n".join(self._print(Text(line, style=style), width=self.width(), soft_wrap=True))

    def _print(self, renderable: object, *, width: int, soft_wrap: bool = False) -> list[str]:
        self._out.seek(0)
        self._out.truncate()
        self._console.width = max(20, width)
        self._console.print(renderable, end="", soft_wrap=soft_wrap)
        # rich pads every row to the width and puts blank rows around blocks; one line keeps only its text.
        rows = [row.rstrip() for row in self._out.getvalue().split("\n")]
        while rows and not rows[-1]:
            rows.pop()
        while rows and not rows[0]:
            rows.pop(0)
        return rows or [""]


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
