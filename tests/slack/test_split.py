"""split_message: parts within the limit, readable cut points, balanced fences, prefix stability."""
from __future__ import annotations

import re

import pytest

from bot.slack.mrkdwn import to_mrkdwn
from bot.slack.split import DEFAULT_LIMIT, split_message

SENTENCES = [
    "The export job reads every row changed since the last checkpoint and writes it to the bucket.",
    "When the checkpoint is missing, it falls back to a full scan, which takes about forty minutes.",
    "Retries use exponential backoff with jitter, capped at five attempts & a 30 s ceiling.",
    "See <https://docs.example.com/export?x=1&amp;y=2|the export guide> for the full list of flags.",
    "Ask <@U024BE7LH> in <#C024BE7LR|data-eng> if the numbers look off after a < b.",
    "日本語のテキストも含まれます。エラーは再試行されます。",
    "Emoji survive too: ✅ done, 👨‍👩‍👧 family, 🇯🇵 flag.",
]


def realistic_answer(paragraphs: int = 24) -> str:
    """A long model answer as the bot would render it: prose, lists, code, a table."""
    blocks = ["## Overview"]
    for index in range(paragraphs):
        prose = " ".join(SENTENCES[(index + k) % len(SENTENCES)] for k in range(3 + index % 3))
        blocks.append(prose)
        if index % 5 == 1:
            code = "\n".join(f"    result_{n} = compute(rows[{n}], limit={n * 7})  # step {n} <ok>"
                             for n in range(8 + index))
            blocks.append(f"```python\ndef run(rows):\n{code}\n    return result_0\n```")
        if index % 7 == 3:
            blocks.append("1. First **step**\n   - nested _detail_ with `code_value`\n2. Second step")
        if index % 9 == 4:
            blocks.append("| Stage | Rows | Time |\n|---|--:|--:|\n"
                          "| scan | 1,204,332 | 41m |\n| write | 98 | 2s |")
    blocks.append("```\n" + "\n".join(f"log line {n}: status=ok && bytes={n * 1031}" for n in range(110)))
    return to_mrkdwn("\n\n".join(blocks))


LONG = realistic_answer()


def reassemble(parts: list[str], text: str) -> None:
    """Each part is a verbatim slice of `text` — after removing a close/reopen the splitter added —
    and consecutive slices are separated only by whitespace."""
    position = 0
    for index, part in enumerate(parts):
        variants = [part]
        if part.startswith("```\n"):
            variants.append(part[4:])
        if part.endswith("\n```"):
            variants += [variant[:-4] for variant in list(variants)]
        for variant in variants:
            found = text.find(variant, position)
            if found != -1 and not text[position:found].strip():
                position = found + len(variant)
                break
        else:
            raise AssertionError(f"part {index} is not the next slice of the text: {part[:80]!r}")
    assert not text[position:].strip(), "text left over after the last part"


def assert_parts_ok(parts: list[str], text: str, limit: int) -> None:
    assert parts
    assert all(0 < len(part) <= limit for part in parts), [len(part) for part in parts]
    for part in parts:
        assert part.count("```") % 2 == 0, part
        assert part == part.strip("\n"), part
        assert "```\n```" not in part, "an empty code block shows as bare backticks"
    reassemble(parts, text)


def test_realistic_answer_is_long_and_has_code():
    assert 9_000 < len(LONG) < 30_000
    assert LONG.count("```") >= 8


@pytest.mark.parametrize("limit", [DEFAULT_LIMIT, 2000, 1000, 400])
def test_long_answer_parts_fit_keep_fences_and_content(limit):
    parts = split_message(LONG, limit=limit)
    assert len(parts) >= len(LONG) // limit
    assert_parts_ok(parts, LONG, limit)


def test_never_cuts_inside_entities_or_links():
    parts = split_message(LONG, limit=300)
    for part in parts:
        body = re.sub(r"&(?:amp|lt|gt);", "", part)
        assert "&" not in body, part
        assert re.fullmatch(r"[^<>]*(?:<[^<>]*>[^<>]*)*", body), part


def test_default_limit_cuts_at_paragraph_boundaries_outside_code():
    parts = split_message(LONG)
    boundaries = 0
    for part, following in zip(parts, parts[1:], strict=False):
        if not part.endswith("\n```"):
            assert LONG.find(part + "\n\n" + following[:40]) != -1
            boundaries += 1
    assert boundaries >= 1


def test_prefix_stability_many_prefixes():
    """Parts of a growing text never change once a later part exists (the streaming contract)."""
    for limit, step, upto in ((DEFAULT_LIMIT, 17, len(LONG)), (700, 29, len(LONG)), (150, 7, 4000)):
        full = split_message(LONG, limit=limit)
        for end in range(1, upto + 1, step):
            prefix_parts = split_message(LONG[:end], limit=limit)
            settled = prefix_parts[:-1]
            assert full[:len(settled)] == settled, (limit, end)


def test_prefix_stability_around_every_cut():
    full = split_message(LONG, limit=500)
    lengths = set()
    for part in full:
        at = LONG.find(part.removeprefix("```\n").removesuffix("\n```")[:50])
        lengths.update(range(max(1, at - 4), at + 4))  # the previous part just became final
        lengths.update(range(at + 495, at + 507))  # this part's window just filled up
    for end in sorted(lengths):
        settled = split_message(LONG[:end], limit=500)[:-1]
        assert full[:len(settled)] == settled, end


def test_preference_order_paragraph_line_sentence_word():
    paragraph = ("Alpha beta gamma. " * 12).strip()  # longer than half the limit
    text = paragraph + "\n\n" + "A short line." + "\n" + paragraph
    assert split_message(text, limit=400)[0] == paragraph
    lines = "\n".join(["one two three four five six seven eight."] * 12)
    first = split_message(lines, limit=200)[0]
    assert first == "\n".join(["one two three four five six seven eight."] * 4)
    prose = "This is a sentence that goes on. " * 20
    first = split_message(prose.strip(), limit=200)[0]
    assert first.endswith("goes on.") and len(first) > 150
    words = "word " * 100
    first = split_message(words.strip(), limit=52)[0]
    assert first == " ".join(["word"] * 10)


def test_short_paragraph_boundary_does_not_make_a_tiny_part():
    text = "Intro.\n\n" + "long line of prose " * 40
    first = split_message(text.strip(), limit=300)[0]
    assert len(first) > 150


def test_single_huge_line_without_spaces():
    text = "x" * 10_001
    parts = split_message(text)
    assert [len(part) for part in parts] == [3500, 3500, 3001]
    assert "".join(parts) == text


def test_huge_code_block_is_closed_and_reopened():
    code = "\n".join(f"    value_{n} = table[{n}] if a < b && c > d else None" for n in range(800))
    text = to_mrkdwn(f"Here is the generated module:\n\n```python\n{code}\n```\n\nThat is all.")
    assert len(text) > 40_000
    parts = split_message(text)
    assert_parts_ok(parts, text, DEFAULT_LIMIT)
    assert parts[0].startswith("Here is the generated module:\n\n```\n")
    for part in parts[1:-1]:
        assert part.startswith("```\n") and part.endswith("\n```")
    assert parts[-1].endswith("\n```\n\nThat is all.")
    # Code lines are cut at line ends, never in the middle, so the code survives copy-paste.
    lines = [line for part in parts for line in part.split("\n") if line.startswith("    value_")]
    assert lines == [line for line in text.split("\n") if line.startswith("    value_")]


def test_huge_code_line_is_cut_inside_the_block():
    text = "```\n" + "0123456789" * 1000 + "\n```"
    parts = split_message(text, limit=1000)
    assert_parts_ok(parts, text, 1000)
    assert all(part.startswith("```\n") and part.endswith("\n```") for part in parts)


def test_grapheme_clusters_are_not_cut():
    text = "👨‍👩‍👧" * 400 + "é" * 300  # e + combining acute
    parts = split_message(text, limit=100)
    assert "".join(parts) == text
    for part in parts:
        assert not part.startswith(("\u200d", "\u0301")) and not part.endswith("\u200d")


def test_entities_without_spaces_stay_whole():
    text = "&amp;&lt;&gt;" * 500
    parts = split_message(text, limit=101)
    assert "".join(parts) == text
    assert all(re.fullmatch(r"(?:&(?:amp|lt|gt);)+", part) for part in parts)


def test_short_text_is_one_part_unchanged():
    assert split_message("*hello*\n\n```\ncode\n```") == ["*hello*\n\n```\ncode\n```"]
    text = "y" * DEFAULT_LIMIT
    assert split_message(text) == [text]


def test_blank_text_gives_no_parts():
    assert split_message("") == []
    assert split_message("\n\n  \n") == []


def test_limit_too_small_is_rejected():
    with pytest.raises(ValueError):
        split_message("abc", limit=5)
