"""SlackReply against the Slack fake: splitting while streaming, msg_too_long, 429s, final blocks."""
from __future__ import annotations

import asyncio
import time

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import Failure
from bot.messages import ToolUseBlock
from bot.slack.edit_budget import EditBudget
from bot.slack.feedback import feedback_blocks
from bot.slack.mrkdwn import to_mrkdwn
from bot.slack.reply import PART_LIMIT, SlackReply
from bot.slack.split import split_message
from tests.fakes import slack as fs
from tests.fakes.slack import FakeSlack
from tools.context import ToolContext
from tools.registry import Registry, tool

pytestmark = pytest.mark.timeout(60)


def long_answer(paragraphs: int = 24) -> str:
    """About 10k characters of Markdown: paragraphs, lists, and fenced code blocks."""
    out = []
    for i in range(paragraphs):
        out.append(f"## Section {i}\n\nParagraph {i} explains **step {i}** of the rollout: "
                   + " ".join(f"word{i}_{j}" for j in range(40)) + ".")
        if i % 4 == 1:
            out.append("```python\n" + "\n".join(f"value_{i}_{k} = compute({k}) & mask  # <ok>" for k in range(12))
                       + "\n```")
        if i % 4 == 3:
            out.append("\n".join(f"- item {i}.{k} with `code_{k}`" for k in range(5)))
    return "\n\n".join(out)


def deltas(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def bot_parts(slack: FakeSlack, channel: str, thread_ts: str) -> list[fs.FakeMessage]:
    return [m for m in slack.messages_in_thread(channel, thread_ts) if m.user == fs.BOT_USER_ID]


async def stream(reply: SlackReply, text: str, *, size: int = 60, delay: float = 0.002) -> None:
    for piece in deltas(text, size):
        reply.append(piece)
        await asyncio.sleep(delay)


async def test_ten_thousand_characters_stream_into_several_balanced_messages(slack, client):
    answer = long_answer()
    assert len(answer) > 10_000
    thread_ts = slack.add_message(fs.CHANNEL_ID, "tell me everything")
    reply = SlackReply(client, EditBudget(), channel=fs.CHANNEL_ID, thread_ts=thread_ts, interval_s=0.05)
    await reply.start()
    await stream(reply, answer)
    finish_started = time.time()
    await reply.finish()

    parts = bot_parts(slack, fs.CHANNEL_ID, thread_ts)
    texts = [m.text for m in parts]
    assert len(parts) >= 3
    assert all(len(t) <= PART_LIMIT for t in texts), [len(t) for t in texts]
    assert all(t.count("```") % 2 == 0 for t in texts), "a part leaves a code block open"
    # Exactly the whole rendered answer, cut as the splitter cuts it: nothing lost, nothing doubled.
    assert texts == split_message(to_mrkdwn(answer), limit=PART_LIMIT)
    for i in range(24):
        assert f"word{i}_39" in "".join(texts)
    # Streaming carried on into the next message: earlier parts were posted while text still arrived.
    overflow_posts = [c for c in slack.calls("chat.postMessage")[1:] if c.at < finish_started]
    assert overflow_posts, "no part was started while the answer was still streaming"
    assert parts[0].history[0] == "_Thinking…_"


async def test_msg_too_long_continues_in_new_messages(client):
    async with FakeSlack(max_text_length=1500) as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        answer = long_answer(10)
        thread_ts = slack.add_message(fs.CHANNEL_ID, "long please")
        reply = SlackReply(client, EditBudget(), channel=fs.CHANNEL_ID, thread_ts=thread_ts, interval_s=0.05)
        await reply.start()
        await stream(reply, answer, size=200)
        await reply.finish()

        assert any(c.error == "msg_too_long" for c in slack.calls())
        texts = [m.text for m in bot_parts(slack, fs.CHANNEL_ID, thread_ts)]
        assert all(len(t) <= 1500 for t in texts)
        assert texts == split_message(to_mrkdwn(answer), limit=reply.part_limit)
        assert all(t.count("```") % 2 == 0 for t in texts)


async def test_429s_on_chat_update_mid_stream_still_end_with_the_complete_text(slack, client):
    answer = long_answer(6)
    thread_ts = slack.add_message(fs.CHANNEL_ID, "go")
    budget = EditBudget()
    reply = SlackReply(client, budget, channel=fs.CHANNEL_ID, thread_ts=thread_ts, interval_s=0.05)
    await reply.start()
    await stream(reply, answer[:len(answer) // 2], size=40, delay=0.01)
    slack.fail_next("chat.update", retry_after=1, times=2)  # one intermediate edit, then the final's first try
    await stream(reply, answer[len(answer) // 2:], size=40, delay=0.01)
    await reply.finish()

    assert slack.count_429("chat.update") == 2
    assert budget.rate_limited == 2
    texts = [m.text for m in bot_parts(slack, fs.CHANNEL_ID, thread_ts)]
    assert texts == split_message(to_mrkdwn(answer), limit=PART_LIMIT)


async def test_many_replies_share_one_budget_under_a_strict_bucket(slack, client):
    # Slack allows 120/min with a burst of 4 here; 12 answers stream at once.
    slack.rate_limit("chat.update", per_minute=120, burst=4)
    budget = EditBudget(per_minute=120, burst=4)
    answers = [f"Answer {n}: " + " ".join(f"w{n}_{i}" for i in range(120)) for n in range(12)]
    threads = [slack.add_message(fs.CHANNEL_ID, f"q{n}") for n in range(12)]
    replies = [SlackReply(client, budget, channel=fs.CHANNEL_ID, thread_ts=t, interval_s=0.1) for t in threads]

    async def one(reply: SlackReply, text: str) -> None:
        await reply.start()
        await stream(reply, text, size=20, delay=0.02)
        await reply.finish()

    await asyncio.wait_for(asyncio.gather(*(one(r, a) for r, a in zip(replies, answers))), 30)
    for thread_ts, text in zip(threads, answers):
        assert [m.text for m in bot_parts(slack, fs.CHANNEL_ID, thread_ts)] == [to_mrkdwn(text)]
    assert slack.count_429("chat.update") <= 2


async def test_final_blocks_repeat_the_text_in_sections_under_the_size_limit(slack, client):
    answer = "First paragraph. " * 90 + "\n\n" + "Second paragraph. " * 90  # ~3,150 characters
    thread_ts = slack.add_message(fs.CHANNEL_ID, "q")
    reply = SlackReply(client, EditBudget(), channel=fs.CHANNEL_ID, thread_ts=thread_ts, interval_s=0.05,
                       final_blocks=feedback_blocks("claude-test"))
    await reply.start()
    reply.append(answer)
    await reply.finish(notice="This answer was cut off because it reached the length limit.")

    parts = bot_parts(slack, fs.CHANNEL_ID, thread_ts)
    assert len(parts) == 1
    last = parts[-1]
    assert last.text.endswith("_This answer was cut off because it reached the length limit._")
    sections = [b for b in last.blocks if b["type"] == "section"]
    assert len(sections) == 2 and all(len(b["text"]["text"]) <= 3000 for b in sections)
    assert "\n\n".join(b["text"]["text"] for b in sections) == last.text
    actions = last.blocks[-1]
    assert actions["type"] == "context_actions"
    buttons = actions["elements"][0]
    assert buttons["positive_button"]["value"] == "up claude-test"
    assert all(not m.blocks for m in parts[:-1])


async def test_refused_blocks_still_deliver_the_text(slack, client):
    thread_ts = slack.add_message(fs.CHANNEL_ID, "q")
    reply = SlackReply(client, EditBudget(), channel=fs.CHANNEL_ID, thread_ts=thread_ts, interval_s=5,
                       final_blocks=feedback_blocks("m"))
    await reply.start()
    reply.append("The **answer**.")
    slack.fail_next("chat.update", "invalid_blocks")
    await reply.finish()
    [message] = bot_parts(slack, fs.CHANNEL_ID, thread_ts)
    assert message.text == "The *answer*." and not message.blocks


async def test_status_line_shows_while_a_tool_runs_and_is_gone_at_the_end(slack, client):
    thread_ts = slack.add_message(fs.CHANNEL_ID, "q")
    @tool(status="Searching documents for “x<y”…")
    async def search_docs(ctx: ToolContext, query: str) -> str:
        """Search (a test tool)."""
        return query

    reply = SlackReply(client, EditBudget(), channel=fs.CHANNEL_ID, thread_ts=thread_ts, interval_s=0.05,
                       registry=Registry([search_docs]))
    await reply.start()
    reply.append("Let me look.")
    reply.tools_started([ToolUseBlock("toolu_1", "search_docs", {"query": "x<y"})])
    await slack.wait_for(lambda: any("Searching" in c.params.get("text", "") for c in slack.calls("chat.update")))
    reply.separate()
    reply.append("Found it.")
    await reply.finish()
    [message] = bot_parts(slack, fs.CHANNEL_ID, thread_ts)
    assert any(h == "Let me look.\n\n_Searching documents for “x&lt;y”…_" for h in message.history)
    assert message.text == "Let me look.\n\nFound it."


async def test_fail_keeps_the_partial_answer_and_adds_one_sentence(slack, client):
    thread_ts = slack.add_message(fs.CHANNEL_ID, "q")
    reply = SlackReply(client, EditBudget(), channel=fs.CHANNEL_ID, thread_ts=thread_ts, interval_s=5)
    await reply.start()
    reply.append("Half an")
    await reply.fail(Failure("Sorry, something went wrong on my side while answering.", "ab12cd34"))
    [message] = bot_parts(slack, fs.CHANNEL_ID, thread_ts)
    assert message.text == "Half an\n\n:warning: Sorry, something went wrong on my side while answering. (ref `ab12cd34`)"


def test_intermediate_edits_leave_the_reserve_for_finals():
    now = [100.0]
    budget = EditBudget(per_minute=60, burst=6, reserve_for_finals=3, clock=lambda: now[0])
    assert [budget.try_acquire() for _ in range(5)] == [True, True, True, False, False]
    now[0] += 1.0  # one token back: 4 in the bucket, one above the reserve
    assert budget.try_acquire() is True and budget.try_acquire() is False


async def test_streamed_answers_teach_the_budget_when_answers_end_and_one_off_messages_do_not(slack, client):
    now = [100.0]
    budget = EditBudget(clock=lambda: now[0])
    said = SlackReply(client, budget, channel=fs.CHANNEL_ID, thread_ts=slack.add_message(fs.CHANNEL_ID, "help"))
    await said.say("Ask me anything.")
    shown = SlackReply(client, budget, channel=fs.CHANNEL_ID, thread_ts=slack.add_message(fs.CHANNEL_ID, "q0"))
    shown.append("Shown whole, never streamed (a recovered answer).")
    now[0] += 1.0
    await shown.finish()
    assert budget.durations.shortest() is None and budget.report()["answers_in_flight"] == 0

    reply = SlackReply(client, budget, channel=fs.CHANNEL_ID, thread_ts=slack.add_message(fs.CHANNEL_ID, "q"),
                       interval_s=5)
    await reply.start()
    reply.append("Streamed for four seconds.")
    now[0] += 4.0
    await reply.finish()
    assert budget.durations.shortest() == 4.0
