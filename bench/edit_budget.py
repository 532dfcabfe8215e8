"""Benchmark: many answers streaming at once against Slack's workspace limit on chat.update.

The Slack fake enforces Tier 3 on chat.update (50 a minute, burst 20; 429 with Retry-After beyond
it). Each answer is a real turn — Conversations + the Anthropic provider against FakeAnthropic
streaming ~1,500 characters over ~5 s — shown through SlackReply with the surface's one chat.update EditBudget.

The reference, measured in the same run: the bucket's floor. From the moments the answers' streams
actually ended (when each reply was asked to finish), the earliest the last final edit could land if
the bucket served finals only (starting full at the bucket's burst, refilling at its rate). Printed per
case: answers complete (final text == the whole answer, checked), stuck placeholders, 429s, progress
edits per answer, and time until every answer is final ÷ the floor.

The budget forecasts when answers in flight may end from the answers it has seen finish, as a running
bot has: each case first answers WARMUP questions (the fake not yet limiting), waits until the
budget's bucket is full again, then starts the measured burst. `--cold` skips that: no history, so
every final may come at any moment and progress edits only take tokens beyond one per answer.

Targets (issue 17): ≤ 1.2 × the floor, 0 × 429, progress edits per answer > 0 when there is room (the
5-answer case), 200 answers all complete with none stuck. Before issue 17: 30 answers final at 28.6 s
against that case's floor (2.3×), with 13 progress edits spending the burst the finals needed.

    .venv/bin/python bench/edit_budget.py [--answers 30 5 200] [--cold]
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
from bot.services import Services  # noqa: E402
from bot.slack.answer import build_reply  # noqa: E402
from bot.slack.edit_budget import EditBudgets  # noqa: E402
from bot.slack.edit_forecast import final_times  # noqa: E402
from bot.slack.mrkdwn import to_mrkdwn  # noqa: E402
from bot.slack.reply import SlackReply  # noqa: E402
from bot.slack.split import split_message  # noqa: E402
from slack_sdk.web.async_client import AsyncWebClient  # noqa: E402
from tests.fakes import slack as fs  # noqa: E402
from tests.fakes.anthropic import FakeAnthropic, Reply  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402

PER_MINUTE, BURST = 50, 20  # Slack's Tier 3, enforced by the fake
WORDS = ("the rollout went well although the cache warmed slowly so we added a second replica and "
         "moved the nightly job to an earlier window which also fixed the alert noise").split()
CHUNK, DELAY = 24, 0.08  # ~1,500 characters in 24-character deltas every 80 ms ≈ 5 s per answer
WARMUP = 5  # answers the budget sees finish before the burst


def answer_text(n: int, words: int = 250) -> str:
    body = [WORDS[(n + i) % len(WORDS)] for i in range(words)]
    paragraphs = [" ".join(body[i:i + 50]) + "." for i in range(0, words, 50)]
    return f"Answer {n}.\n\n" + "\n\n".join(paragraphs)


async def run(answers: int, tmp: Path, *, warm: bool) -> dict[str, float]:
    slack, model = FakeSlack(), FakeAnthropic()
    slack.start_in_thread()  # the fakes on their own loops, as the real services would be
    model.start_in_thread()
    texts = [answer_text(n) for n in range(answers + WARMUP)]

    def respond(body: dict) -> Reply:
        question = body["messages"][-1]["content"][0]["text"]
        return Reply.text(texts[int(question.split()[-1])], chunk_chars=CHUNK, token_delay_s=DELAY)

    model.respond = respond
    settings = load_settings(
        SLACK_BOT_TOKEN=fs.BOT_TOKEN, SLACK_SIGNING_SECRET=fs.SIGNING_SECRET, SLACK_API_URL=slack.api_url,
        ANTHROPIC_API_KEY="sk-ant-fake-test-key", ANTHROPIC_BASE_URL=model.base_url,
        THREADBOT_DB=str(tmp / f"{answers}.db"), THREADBOT_USER_RPM="100000", THREADBOT_MAX_TOKENS="4096",
    )
    said: list[str] = []  # what the budget says when it is the bottleneck (issue 17: once, with the queue)
    handler = logging.Handler(level=logging.WARNING)
    handler.emit = lambda record: said.append(record.getMessage()) if "bottleneck" in record.getMessage() else None
    logging.getLogger("bot.slack.edit_budget").addHandler(handler)
    services = await Services.create(settings)
    budgets = EditBudgets()  # what the Slack surface builds: one chat.update budget for the workspace
    client = AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url, session=services.http)
    threads = [slack.add_message(fs.CHANNEL_ID, f"question {n}", user=f"U{n:05d}") for n in range(answers + WARMUP)]
    stream_ended: list[float] = []
    landed: list[float] = []
    started = time.monotonic()

    async def one(n: int) -> None:
        turn = Turn(team_id=fs.TEAM_ID, channel_id=fs.CHANNEL_ID, thread_ts=threads[n], user_id=f"U{n:05d}",
                    text=f"please answer question {n}", ts=threads[n], surface="mention")
        reply = await build_reply(services, budgets, client, turn)
        assert isinstance(reply, SlackReply)
        finish = reply.finish

        async def timed_finish(**kwargs):  # the moment the stream ended: when the final asks for its token
            stream_ended.append(time.monotonic() - started)
            await finish(**kwargs)

        reply.finish = timed_finish  # type: ignore[method-assign]
        await services.conversations.handle(turn, reply)
        landed.append(time.monotonic() - started)

    try:
        if warm:
            await asyncio.gather(*(one(n) for n in range(answers, answers + WARMUP)))
            while budgets.chat_update.report()["tokens"] < BURST:  # the burst starts on a full bucket
                await asyncio.sleep(0.5)
            stream_ended.clear()
            landed.clear()
        slack.rate_limit("chat.update", per_minute=PER_MINUTE, burst=BURST)  # full bucket from here
        started = time.monotonic()
        await asyncio.gather(*(one(n) for n in range(answers)))
    finally:
        logging.getLogger("bot.slack.edit_budget").removeHandler(handler)
        slack.stop_thread()
        model.stop_in_thread()
        await services.aclose()

    complete = stuck = 0
    progress: list[int] = []
    for n, thread_ts in enumerate(threads[:answers]):
        parts = [m for m in slack.messages_in_thread(fs.CHANNEL_ID, thread_ts) if m.user == fs.BOT_USER_ID]
        if [m.text for m in parts] == split_message(to_mrkdwn(texts[n])):
            complete += 1
        stuck += sum(1 for m in parts if m.text == "_Thinking…_")
        ts_set = {m.ts for m in parts}
        updates = sum(1 for c in slack.calls("chat.update") if c.params.get("ts") in ts_set and c.ok)
        progress.append(updates - len(parts))  # one final edit per part
    floor = max(final_times(BURST, rate=PER_MINUTE / 60, burst=BURST, starts_at=0.0, ends=stream_ended))
    return {
        "complete": complete, "stuck": stuck, "answers": answers, "429": slack.count_429("chat.update"),
        "progress_mean": statistics.mean(progress), "progress_max": max(progress),
        "said": said, "last_final_s": max(landed), "floor_s": floor, "stream_s": statistics.median(stream_ended),
    }


def show(r: dict[str, float]) -> None:
    print(f"{r['answers']:>4} answers: {r['complete']}/{r['answers']} complete, {r['stuck']} stuck, "
          f"{r['429']} × 429; streams ended at median {r['stream_s']:.1f} s; progress edits per answer "
          f"mean {r['progress_mean']:.2f} (max {r['progress_max']}); every answer final at {r['last_final_s']:.1f} s "
          f"vs the bucket's floor {r['floor_s']:.1f} s = {r['last_final_s'] / r['floor_s']:.2f}× (target ≤ 1.2×)")
    print(f"      the log said the budget is the bottleneck {len(r['said'])}×"
          + (f": {r['said'][0]}" if r["said"] else ""))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, nargs="+", default=[30, 5, 200])
    parser.add_argument("--cold", action="store_true", help="no answers seen before the burst (no forecast)")
    args = parser.parse_args()
    print(f"chat.update {PER_MINUTE}/min, burst {BURST}; "
          + ("cold: no answers seen before" if args.cold else f"{WARMUP} answers seen before each burst"))
    logging.basicConfig(level=logging.ERROR)
    budget_log = logging.getLogger("bot.slack.edit_budget")  # its warnings are counted and shown per case
    budget_log.setLevel(logging.WARNING)
    budget_log.propagate = False
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for answers in args.answers:
            results.append(await run(answers, Path(tmp), warm=not args.cold))
            show(results[-1])
    for r in results:
        assert r["complete"] == r["answers"], "an answer's final text is incomplete"
        assert r["stuck"] == 0


if __name__ == "__main__":
    asyncio.run(main())
