"""Splitting rendered mrkdwn into Slack-sized messages: readable cuts, balanced fences, stable parts.

Why 3,500 characters by default: Slack truncates a message's `text` at 40,000 characters, but
`chat.update` starts failing with `msg_too_long` far below that once the text is rich, and long
messages render badly near ~4,000 characters (collapsed behind "Show more", slow edits). 3,500
leaves room under 4,000 for what the reply adds around a part (a status line, a cut-off notice),
and even if every character were an astral emoji (two UTF-16 units) a part stays far below 40k.

Stability: the streaming reply re-splits the whole answer on every edit and treats all parts but
the last as final. So every cut is decided from a window of at most `limit + 1` characters after
the part's start and nothing beyond it: once the text has grown past that window, the part can no
longer change. Splitting any prefix of a text yields the same parts as the full text, except the
prefix's last part.
"""
from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Iterable

__all__ = ["split_message", "DEFAULT_LIMIT"]

DEFAULT_LIMIT = 3500
MIN_LIMIT = 20

_FENCE = "```"
_CLOSE = "\n```"  # appended to a part that ends inside a code block
_REOPEN = "```\n"  # prepended to the part that continues it

# Spans a cut must not fall into: escape entities, Slack links and mentions, inline code.
_ATOMIC = re.compile(r"&(?:[a-zA-Z]+|#[0-9]+|#x[0-9a-fA-F]+);|<[^<>\n]+>|`[^`\n]+`")
_BLANK_LINE = re.compile(r"\n(?=\n)")
_NEWLINE = re.compile(r"\n")
_SPACE = re.compile(r" ")
_OPEN_TAIL = re.compile(r"&[a-zA-Z#0-9]*\Z|<[^<>\n]*\Z|`[^`\n]*\Z")
_SENTENCE_END = re.compile(r"[.!?…](?= )|[。！？]")
# A cut before these would separate a character from its accents, emoji modifiers or ZWJ partner.
_JOINERS = {"\u200d", "\ufe0e", "\ufe0f", *map(chr, range(0x1F3FB, 0x1F400))}


@dataclass(frozen=True, slots=True)
class _Cut:
    end: int  # the part's text ends here (exclusive)
    resume: int  # the next part's text starts here


def split_message(text: str, *, limit: int = DEFAULT_LIMIT) -> list[str]:
    """Split mrkdwn into parts of at most `limit` characters.

    Cuts prefer blank lines, then line breaks (outside code, then inside it), then sentence ends,
    then spaces; a hard cut is the last resort. A code block that has to be cut is closed at the end
    of one part and reopened at the start of the next. Entities (`&amp;`), `<url|label>` links and
    inline code are never cut unless one alone is longer than a part. Blank text gives no parts.
    """
    if limit < MIN_LIMIT:
        raise ValueError(f"limit must be at least {MIN_LIMIT} characters, got {limit}")
    fences = _fence_starts(text)
    parts: list[str] = []
    start = _skip(text, 0, "\n")
    reopened = False
    while start < len(text):
        prefix = _REOPEN if reopened else ""
        budget = limit - len(prefix)
        if len(text) - start <= budget:
            rest = text[start:].rstrip()
            if rest.strip():
                parts.append(prefix + rest)
            break
        cut = _Window(text, start, budget, fences).choose()
        inside = _in_fence(fences, cut.end)
        body = text[start:cut.end] if inside else text[start:cut.end].rstrip()
        part = prefix + body + (_CLOSE if inside else "")
        assert len(part) <= limit, (len(part), limit)
        if body.strip():
            parts.append(part)
        start, reopened = cut.resume, inside
        if not inside:
            start = _skip(text, start, "\n")
    return parts


def _fence_starts(text: str) -> list[int]:
    # Slack opens and closes a code block at every ``` wherever it stands, so count them all.
    starts, at = [], text.find(_FENCE)
    while at != -1:
        starts.append(at)
        at = text.find(_FENCE, at + len(_FENCE))
    return starts


def _in_fence(fences: list[int], pos: int) -> bool:
    """Whether position `pos` (between two characters) lies inside a code block."""
    return bisect_right(fences, pos - len(_FENCE)) % 2 == 1


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


class _Window:
    """The characters one cut may look at: text[start : start + budget + 1]."""

    def __init__(self, text: str, start: int, budget: int, fences: list[int]):
        self.text = text
        self.start = start
        self.budget = budget
        self.stop = min(len(text), start + budget + 1)
        self.fences = fences
        window = text[start:self.stop]
        # Only spans short enough to be worth keeping whole; a mispaired backtick must not block
        # half the window.
        self.atomic = [(start + m.start(), start + m.end()) for m in _ATOMIC.finditer(window)
                       if m.end() - m.start() <= budget // 4]
        # A span still open where the window ends may close just after it: keep it whole too,
        # without looking further (that would make the cut depend on text not yet streamed).
        tail = _OPEN_TAIL.search(window, max(0, len(window) - budget // 4))
        if tail and (not self.atomic or self.atomic[-1][1] <= start + tail.start()):
            self.atomic.append((start + tail.start(), self.stop + 1))
        self.atomic_starts = [s for s, _ in self.atomic]

    def choose(self) -> _Cut:
        tiers = (self._paragraphs, self._lines_outside, self._lines_inside, self._sentences,
                 self._words_outside, self._words_inside)
        for min_fill in (self.budget // 2, 1):
            for tier in tiers:
                cut = tier(self.start + min_fill)
                if cut is not None:
                    return cut
        return self._hard(keep_atomic=True) or self._hard(keep_atomic=False) or self._forced()

    # --- candidate tiers, each returning its latest valid cut at or after `lowest` --------------

    def _paragraphs(self, lowest: int) -> _Cut | None:
        return self._first_valid(_Cut(at, at + 1) for at in self._positions(_BLANK_LINE, lowest)
                                 if not self._fenced(at))

    def _lines_outside(self, lowest: int) -> _Cut | None:
        return self._first_valid(_Cut(at, at + 1) for at in self._positions(_NEWLINE, lowest)
                                 if not self._fenced(at))

    def _lines_inside(self, lowest: int) -> _Cut | None:
        return self._first_valid(_Cut(at, at + 1) for at in self._positions(_NEWLINE, lowest)
                                 if self._fenced(at))

    def _sentences(self, lowest: int) -> _Cut | None:
        return self._first_valid(_Cut(m.end(), _skip(self.text, m.end(), " "))
                                 for m in self._matches(_SENTENCE_END, lowest) if not self._fenced(m.end()))

    def _words_outside(self, lowest: int) -> _Cut | None:
        return self._first_valid(_Cut(at, _skip(self.text, at, " ")) for at in self._positions(_SPACE, lowest)
                                 if not self._fenced(at))

    def _words_inside(self, lowest: int) -> _Cut | None:
        # Code keeps its spaces: cut after the space, drop nothing.
        return self._first_valid(_Cut(at + 1, at + 1) for at in self._positions(_SPACE, lowest - 1)
                                 if self._fenced(at + 1))

    def _first_valid(self, cuts: Iterable[_Cut]) -> _Cut | None:
        """The first candidate (latest first) that `_valid` accepts, as it adjusts it."""
        for cut in cuts:
            valid = self._valid(cut)
            if valid:
                return valid
        return None

    def _hard(self, *, keep_atomic: bool) -> _Cut | None:
        for at in range(self.start + self.budget, self.start, -1):
            if keep_atomic and (self._splits_atomic(at) or self._splits_grapheme(at)):
                continue
            cut = self._valid(_Cut(at, at), check_atomic=False)
            if cut:
                return cut
        return None

    def _forced(self) -> _Cut:
        # Only reachable for windows of nothing but whitespace and fence markers.
        at = self.start + self.budget - (len(_CLOSE) if self._fenced(self.start + self.budget) else 0)
        while self._splits_fence_marker(at) and at > self.start + 1:
            at -= 1
        return _Cut(at, at)

    # --- helpers ----------------------------------------------------------------------------

    def _matches(self, pattern: re.Pattern[str], lowest: int) -> list[re.Match[str]]:
        found = list(pattern.finditer(self.text, self.start, self.stop))
        return [m for m in reversed(found) if m.start() >= lowest]

    def _positions(self, pattern: re.Pattern[str], lowest: int) -> list[int]:
        return [m.start() for m in self._matches(pattern, max(lowest, self.start))]

    def _fenced(self, pos: int) -> bool:
        return _in_fence(self.fences, pos)

    def _valid(self, cut: _Cut, *, check_atomic: bool = True) -> _Cut | None:
        text, start = self.text, self.start
        if cut.end <= start or self._splits_fence_marker(cut.end):
            return None
        if check_atomic and self._splits_atomic(cut.end):
            return None
        if not text[start:cut.end].strip():
            return None
        if self._fenced(cut.end):
            if cut.end + len(_CLOSE) > start + self.budget:
                return None
            # Cutting right after a fence opens, or right before it closes, would leave an empty
            # code block that Slack shows as bare backticks.
            opened = self.fences[bisect_right(self.fences, cut.end - len(_FENCE)) - 1] + len(_FENCE)
            if not text[max(opened, start):cut.end].strip():
                return None
            ahead = text[cut.resume:min(cut.resume + len(_FENCE), self.stop)]
            if ahead == _FENCE:
                return None
        return cut

    def _splits_fence_marker(self, pos: int) -> bool:
        index = bisect_left(self.fences, pos) - 1
        if index < 0:
            return False
        begin = self.fences[index]
        # A marker only partly inside the window is unknown to a shorter prefix: ignore it there too.
        return begin < pos < begin + len(_FENCE) <= self.stop

    def _splits_atomic(self, pos: int) -> bool:
        index = bisect_left(self.atomic_starts, pos) - 1
        return index >= 0 and self.atomic[index][1] > pos

    def _splits_grapheme(self, pos: int) -> bool:
        after, before = self.text[pos:pos + 1], self.text[pos - 1:pos]
        if after and (after in _JOINERS or unicodedata.combining(after)):
            return True
        return before == "\u200d" or (_regional(before) and _regional(after))


def _regional(char: str) -> bool:
    return bool(char) and 0x1F1E6 <= ord(char) <= 0x1F1FF
