"""Benchmark: 50 answers streaming at once against Slack's workspace limit on chat.update.

The Slack fake enforces a Tier-3-like bucket on chat.update (50 a minute, burst 20; 429 with
Retry-After beyond it). Each answer is a real turn — Conversations + the Anthropic provider against
FakeAnthropic streaming ~600 words in ~3 s — shown through SlackReply. Two runs in the same process:

  shared   — every reply draws from one workspace-wide EditBudget (what threadbot does)
  separate — each reply has its own unlimited budget (the reference: every answer edits on its own
             schedule, as the bots in shared/reference/peers.md do; ours still retries its finals)

Printed per run: answers complete (final text == the whole answer, checked), stuck placeholders,
429s from Slack, chat.update calls per answer, and when the last final text landed.
Reference (peers.md): peers complete 6–14 of 30 with ~1,300–8,200 × 429. Target: 50/50, a few 429s.

    .venv/bin/python bench/edit_budget.py [--answers 50] [--skip-reference]
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import load_settings  # noqa: E402
from bot.conversation import Turn  # noqa: E402
from bot.slack.answer import build_reply  # noqa: E402
from bot.slack.edit_budget import EditBudget, EditBudgets  # noqa: E402
from bot.slack.mrkdwn import to_mrkdwn  # noqa: E402
from bot.slack.reply import SlackReply  # noqa: E402
from bot.services import Services  # noqa: E402
from bot.slack.split import split_message  # noqa: E402
from slack_sdk.web.async_client import AsyncWebClient  # noqa: E402
from tests.fakes import slack as fs  # noqa: E402
from tests.fakes.anthropic import FakeAnthropic, Reply  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402

WORDS = ("the rollout went well although the cache warmed slowly so we added a second replica and "
         "moved the nightly job to an earlier window which also fixed the alert noise").split()


def answer_text(n: int, words: int = 600) -> str:
    body = [WORDS[(n + i) % len(WORDS)] for i in range(words)]
    paragraphs = [" ".join(body[i:i + 60]) + "." for i in range(0, words, 60)]
    return f"Answer {n}.\n\n" + "\n\n".join(paragraphs)


async def run(mode: str, answers: int, tmp: Path) -> dict[str, float]:
    slack, model = FakeSlack(), FakeAnthropic()
    slack.start_in_thread()  # the fakes on their own loops, as the real services would be
    model.start_in_thread()
    slack.rate_limit("chat.update", per_minute=50, burst=20)
    texts = [answer_text(n) for n in range(answers)]

    def respond(body: dict) -> Reply:
        question = body["messages"][-1]["content"][0]["text"]
        text = texts[int(question.split()[-1])]
        # ~3 s per answer: ~3,800 characters in 24-character deltas every 20 ms.
        return Reply.text(text, chunk_chars=24, token_delay_s=0.019)

    model.respond = respond
    settings = load_settings(
        SLACK_BOT_TOKEN=fs.BOT_TOKEN, SLACK_SIGNING_SECRET=fs.SIGNING_SECRET, SLACK_API_URL=slack.api_url,
        ANTHROPIC_API_KEY="sk-ant-fake-test-key", ANTHROPIC_BASE_URL=model.base_url,
        THREADBOT_DB=str(tmp / f"{mode}.db"), THREADBOT_USER_RPM="100000", THREADBOT_MAX_TOKENS="4096",
    )
    services = await Services.create(settings)
    budgets = EditBudgets()
    client = AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url, session=services.http)
    threads = [slack.add_message(fs.CHANNEL_ID, f"question {n}", user=f"U{n:05d}") for n in range(answers)]
    replies: list[SlackReply] = []
    started = time.monotonic()
    landed: list[float] = []

    async def one(n: int) -> None:
        turn = Turn(team_id=fs.TEAM_ID, channel_id=fs.CHANNEL_ID, thread_ts=threads[n], user_id=f"U{n:05d}",
                    text=f"please answer question {n}", ts=threads[n], surface="mention")
        reply = build_reply(services, budgets, client, turn)
        assert isinstance(reply, SlackReply)
        if mode == "separate":
            reply.budget = EditBudget(per_minute=1e9, burst=10**9)
        replies.append(reply)
        await services.conversations.handle(turn, reply)
        landed.append(time.monotonic() - started)

    try:
        await asyncio.gather(*(one(n) for n in range(answers)))
    finally:
        slack.stop_thread()
        model.stop_in_thread()
        await services.aclose()

    complete = stuck = 0
    edits: list[int] = []
    for n, thread_ts in enumerate(threads):
        parts = [m for m in slack.messages_in_thread(fs.CHANNEL_ID, thread_ts) if m.user == fs.BOT_USER_ID]
        if [m.text for m in parts] == split_message(to_mrkdwn(texts[n])):
            complete += 1
        stuck += sum(1 for m in parts if m.text == "_Thinking…_")
        ts_set = {m.ts for m in parts}
        edits.append(sum(1 for c in slack.calls("chat.update") if c.params.get("ts") in ts_set and c.ok))
    return {
        "complete": complete, "stuck": stuck, "answers": answers, "429": slack.count_429("chat.update"),
        "edits_median": statistics.median(edits), "edits_min": min(edits), "edits_max": max(edits),
        "last_final_s": max(landed), "median_final_s": statistics.median(landed),
    }


def show(mode: str, r: dict[str, float]) -> None:
    print(f"{mode:>9}: {r['complete']}/{r['answers']} complete, {r['stuck']} stuck placeholders, "
          f"{r['429']} × 429 on chat.update, edits per answer median {r['edits_median']:.0f} "
          f"(min {r['edits_min']}, max {r['edits_max']}), finals landed: median {r['median_final_s']:.1f} s, "
          f"last {r['last_final_s']:.1f} s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=50)
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        shared = await run("shared", args.answers, Path(tmp))
        show("shared", shared)
        if not args.skip_reference:
            separate = await run("separate", args.answers, Path(tmp))
            show("separate", separate)
            print(f"429s: shared budget {shared['429']} vs separate {separate['429']}; "
                  f"edits per answer {shared['edits_median']:.0f} vs {separate['edits_median']:.0f}")
    print("peers (peers.md, 30 answers): 6–14 of 30 complete, ~1,300–8,200 × 429")
    assert shared["complete"] == shared["answers"], "an answer's final text is incomplete"
    assert shared["stuck"] == 0


if __name__ == "__main__":
    asyncio.run(main())
