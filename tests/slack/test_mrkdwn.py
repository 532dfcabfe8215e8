"""Markdown → mrkdwn: the hand-checked corpus, escaping invariants, and behaviour on streamed prefixes."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot.slack.mrkdwn import IncrementalRenderer, escape_mrkdwn, slack_link, to_mrkdwn

CASES = yaml.safe_load((Path(__file__).parents[1] / "data" / "mrkdwn" / "cases.yaml").read_text("utf-8"))
BY_NAME = {case["name"]: case for case in CASES}

# Every `<` the renderer leaves raw must open one of these; everything else is escaped.
SLACK_CONTROL = re.compile(r"<(?:https?://|mailto:|@[UWB]|#C|!)[^<>\n]*>")
ENTITY = re.compile(r"&(?:amp|lt|gt);")


def test_corpus_is_big_enough_and_names_are_unique():
    assert len(CASES) >= 25
    assert len(BY_NAME) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_corpus_case(case):
    assert to_mrkdwn(case["markdown"]) == case["mrkdwn"]


def _assert_slack_safe(rendered: str) -> None:
    """No stray control characters: raw `<…>` only for links/mentions, `&` only in entities."""
    unquoted = "\n".join(line.removeprefix("> ") for line in rendered.split("\n"))
    without_controls = SLACK_CONTROL.sub("", unquoted)
    assert "<" not in without_controls and ">" not in without_controls, rendered
    assert "&" not in ENTITY.sub("", without_controls), rendered


def _assert_fences_balanced(rendered: str) -> None:
    assert rendered.count("```") % 2 == 0, rendered


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_every_streamed_prefix_renders_safe_and_balanced(case):
    markdown = case["markdown"]
    for end in range(1, len(markdown) + 1):
        rendered = to_mrkdwn(markdown[:end])
        _assert_slack_safe(rendered)
        _assert_fences_balanced(rendered)


def test_unclosed_fence_renders_closed_and_untouched():
    rendered = to_mrkdwn("Run this:\n\n```sh\nexport A=1 && echo *$A*\n")
    assert rendered == "Run this:\n\n```\nexport A=1 &amp;&amp; echo *$A*\n```"


def test_unclosed_bold_is_left_as_written_then_closes():
    assert to_mrkdwn("Use **caution") == "Use **caution"
    assert to_mrkdwn("Use **caution**") == "Use *caution*"


def test_snake_case_and_multiplication_stay_literal():
    assert to_mrkdwn("call load_user_profile_v2 with 3*4*5 items") == \
        "call load_user_profile_v2 with 3*4*5 items"
    assert to_mrkdwn("x**2**y") == "x**2**y"


def test_nested_list_indentation_and_bullets_by_depth():
    rendered = to_mrkdwn("- a\n  - b\n    - c\n      - d")
    assert rendered == "• a\n    ◦ b\n        ▪ c\n            • d"


def test_code_inside_nested_list_is_not_indented():
    rendered = to_mrkdwn("- a\n  - b\n\n    ```\n    x = 1\n      y = 2\n    ```\n  - c")
    assert rendered == "• a\n    ◦ b\n```\nx = 1\n  y = 2\n```\n    ◦ c"


def test_table_columns_align_by_display_width():
    rendered = to_mrkdwn("| k | v |\n|---|--:|\n| 日本 | 1 |\n| abcd | 22 |")
    lines = rendered.split("\n")[1:-1]
    assert lines == ["k    |  v", "-----|---", "日本 |  1", "abcd | 22"]


def test_table_is_one_code_block_even_with_formatting():
    rendered = to_mrkdwn("| a | b |\n|---|---|\n| **x** | _y_ |")
    assert rendered == "```\na | b\n--|--\nx | y\n```"


def test_slack_link_percent_encodes_what_would_break_it():
    assert slack_link("https://x.test/a|b>c d<e&f=1", "label") == \
        "<https://x.test/a%7Cb%3Ec%20d%3Ce&amp;f=1|label>"
    assert slack_link("https://x.test/", "https://x.test/") == "<https://x.test/>"
    assert slack_link("https://x.test/", "") == "<https://x.test/>"


def test_escape_mrkdwn_escapes_ampersand_first():
    assert escape_mrkdwn("&lt; <b> & >") == "&amp;lt; &lt;b&gt; &amp; &gt;"


def test_mentions_preserved_but_unknown_angle_text_escaped():
    rendered = to_mrkdwn("<@U12345> <!channel> <#C999|ops> <@nobody> <!-- c --> <x>")
    assert rendered == "<@U12345> <!channel> <#C999|ops> &lt;@nobody&gt; &lt;!-- c --&gt; &lt;x&gt;"


def test_rendering_is_prefix_stable_at_block_boundaries():
    """The streaming reply re-renders the growing answer: finished blocks must not change."""
    markdown = BY_NAME["long_realistic_answer"]["markdown"] + "\n\n" + \
        BY_NAME["mixed_nested_three_levels"]["markdown"] + "\n\n" + BY_NAME["quote_with_list"]["markdown"]
    full = to_mrkdwn(markdown)
    boundaries = [m.start() for m in re.finditer(r"\n\n", markdown)]
    assert len(boundaries) >= 10
    for cut in boundaries:
        assert full.startswith(to_mrkdwn(markdown[:cut])), markdown[:cut]


def test_large_answer_renders_as_its_parts():
    # How fast this renders is bench/mrkdwn.py's business (a timed test flakes on a loaded machine);
    # here: a ~40k-character answer renders exactly as its repeated parts do.
    answer = BY_NAME["long_realistic_answer"]["markdown"]
    assert to_mrkdwn((answer + "\n\n") * 40) == "\n\n".join([to_mrkdwn(answer)] * 40)


def _streamed(markdown: str, step: int) -> list[int]:
    return list(range(1, len(markdown), step)) + [len(markdown)]


@pytest.mark.parametrize(("names", "step"),
                         [(None, 11), (None, 97), (["long_realistic_answer", "quote_with_list"], 1)])
def test_incremental_renderer_matches_full_render_while_streaming(names, step):
    markdown = "\n\n".join(case["markdown"] for case in CASES if names is None or case["name"] in names)
    renderer = IncrementalRenderer()
    for end in _streamed(markdown, step):
        assert renderer.render(markdown[:end]) == to_mrkdwn(markdown[:end]), end


def test_incremental_renderer_really_skips_settled_blocks():
    renderer = IncrementalRenderer()
    renderer.render("# Title\n\nFirst paragraph.\n\n- item\n\nLast")
    assert renderer._source == "# Title\n\nFirst paragraph.\n\n- item\n\n"


def test_incremental_renderer_handles_reference_definitions_and_rewrites():
    markdown = ("See [the docs][d] and [more].\n\nSome text.\n\n"
                "[d]: https://docs.example.com\n[more]: https://m.example")
    renderer = IncrementalRenderer()
    for end in _streamed(markdown, 1):
        assert renderer.render(markdown[:end]) == to_mrkdwn(markdown[:end]), end
    assert "<https://docs.example.com|the docs>" in renderer.render(markdown)
    # The caller may render a different text (a failure notice replacing the answer): no stale cache.
    assert renderer.render("Something else entirely.") == "Something else entirely."
    assert renderer.render("a\r\n\r\nb **c**") == to_mrkdwn("a\r\n\r\nb **c**")
