"""Benchmark: Slack reads and prompt tokens per turn in a busy channel thread, and turn preparation time.

One run, two approaches on the same 300-message thread and the same 20 turns by four people:
- threadbot: the real Bolt app (in process, fake Slack and model on loopback). Messages arrive as events
  and are recorded; `conversations.replies` is read once when the bot joins; each turn shows the model
  what others wrote since it last looked, beside its own history.
- peers (the reference): every turn re-reads the whole thread with `conversations.replies` (all pages)
  and sends all of it, attributed, with the question (what most Slack LLM bots do).
Printed per turn: Slack reads (conversations.* and users.info) and conversation tokens sent to the model.
Targets: <= 1 read per turn on average and never more than one; 0 on turns whose context came as events.

Then turn preparation for a 300-message thread the bot has recorded (store read, context, the user
message's token count): now (each message counted once when recorded) against the same work counting
every line at each turn (E's first version, the reference), interleaved. Target: < 10 ms.

    .venv/bin/python bench/thread_context.py [--messages 300] [--turns 20]
"""
from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slack_sdk.web.async_client import AsyncWebClient  # noqa: E402

from bot.conversation.thread_context import question_with_context, user_message_tokens  # noqa: E402
from bot.llm.tokens import count_text_tokens  # noqa: E402
from bot.slack.thread_sync import SlackThreadSource, ThreadSync, counted  # noqa: E402
from bot.store.sqlite import SqliteStore  # noqa: E402
from bot.store import ThreadMessage  # noqa: E402
from tests.fakes import slack as fs  # noqa: E402
from tests.fakes.anthropic import Reply  # noqa: E402
from tests.slackapp import running_bot  # noqa: E402

PEOPLE = {"U0ALICE": "alice", "U0BOB": "bob", "U0CAROL": "carol", "U0DAVE": "dave"}
WORDS = ("deploy migration staging rollback prod database error log timeout retry cache fix ship review merge "
         "latency p99 alert pager runbook owner friday customer ticket config flag canary").split()
# Reads of the conversation itself; users.info (display names, cached an hour) is counted apart.
READS = ("conversations.replies", "conversations.history", "conversations.info", "conversations.members")


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 40)))


def conversation_tokens(request: dict) -> int:
    """Tokens of the text the model was sent in messages (system prompt and tools are alike for both)."""
    total = 0
    for message in request["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        total += sum(count_text_tokens(b.get("text", "")) for b in blocks if b.get("type") == "text")
    return total


async def peers_turn(client: AsyncWebClient, channel: str, thread_ts: str, question: str) -> tuple[int, int]:
    """What a bot without its own record does: every page of the thread, all of it in the prompt."""
    calls, lines, cursor = 0, [], None
    while True:
        response = await client.conversations_replies(channel=channel, ts=thread_ts,
                                                      **({"cursor": cursor} if cursor else {}))
        calls += 1
        lines += [f"[{PEOPLE.get(m.get('user'), m.get('user'))}]: {m.get('text', '')}" for m in response["messages"]]
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            break
    return calls, count_text_tokens("\n".join(lines) + "\n" + question)


async def scenario(messages: int, turns: int) -> None:
    rng = random.Random(11)
    people = list(PEOPLE)
    with tempfile.TemporaryDirectory() as tmp:
        async with running_bot(Path(tmp)) as bot:
            slack = bot.slack
            for user, name in PEOPLE.items():
                if user not in slack.users:
                    slack.add_user(user, name=name)
            slack.channels[fs.CHANNEL_ID].members += [u for u in people if u != fs.USER_ID]
            parent = slack.add_thread(fs.CHANNEL_ID, "prod deploy failed at 14:02",
                                      [(rng.choice(people), sentence(rng)) for _ in range(messages - 1)])
            peers = AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url)
            rows = []
            for turn in range(turns):
                if turn:  # between turns, the others talk; the bot receives each message as an event
                    for _ in range(rng.randint(2, 6)):
                        await bot.deliver(slack.user_message(fs.CHANNEL_ID, sentence(rng), user=rng.choice(people),
                                                             thread_ts=parent))
                asker = people[turn % len(people)]
                question = f"what do you make of this, turn {turn + 1}?"
                reads_before = {m: len(slack.calls(m)) for m in (*READS, "users.info")}
                bot.model.add(Reply.text(f"Answer {turn + 1}."))
                await bot.deliver(slack.user_message(fs.CHANNEL_ID, question, user=asker, thread_ts=parent,
                                                     mention=turn == 0 or turn % 5 == 0))
                await bot.final_text(fs.CHANNEL_ID, parent, f"Answer {turn + 1}.", timeout=60)
                reads = sum(len(slack.calls(m)) - reads_before[m] for m in READS)
                names = len(slack.calls("users.info")) - reads_before["users.info"]
                ours = conversation_tokens(bot.model.requests[-1])
                peer_calls, peer_tokens = await peers_turn(peers, fs.CHANNEL_ID, parent, question)
                rows.append((turn + 1, reads, ours, peer_calls, peer_tokens, names))
    print(f"{messages}-message thread, {turns} turns by {len(PEOPLE)} people (2-6 messages between turns, as events)")
    print(f"{'turn':>4} {'threadbot reads':>15} {'users.info':>10} {'tokens':>8} {'peers reads':>11} {'tokens':>8}")
    for row in rows:
        print(f"{row[0]:>4} {row[1]:>15} {row[5]:>10} {row[2]:>8,} {row[3]:>11} {row[4]:>8,}")
    ours_reads = [r[1] for r in rows]
    print(f"reads per turn: threadbot mean {statistics.mean(ours_reads):.2f}, max {max(ours_reads)}, "
          f"turns with 0: {ours_reads.count(0)}/{turns} (target: mean <= 1, max 1, 0 after the first); "
          f"peers mean {statistics.mean(r[3] for r in rows):.2f}")
    print(f"users.info: {sum(r[5] for r in rows)} in all (each author once, then cached)")
    ours_tokens, peer_tokens = sum(r[2] for r in rows), sum(r[4] for r in rows)
    print(f"conversation tokens, all turns: threadbot {ours_tokens:,}, peers {peer_tokens:,} "
          f"(ratio {ours_tokens / peer_tokens:.2f})")


async def preparation(messages: int, rounds: int) -> None:
    rng = random.Random(5)
    channel, thread_ts = "C0BENCH", "1700000000.000100"
    names = dict(PEOPLE)
    recorded = [ThreadMessage(ts=f"{1700000001 + i}.000100", user_id=rng.choice(list(PEOPLE)), text=sentence(rng))
                for i in range(messages)]
    question = "what do you make of this?"
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(str(Path(tmp) / "bench.db"))
        stores = {}
        for label, batch in (("now", [counted(m) for m in recorded]), ("reference", recorded)):
            ch = f"{channel}{label}"
            await store.mark_thread(ch, thread_ts, synced_ts=thread_ts)
            await store.record_thread_messages(ch, thread_ts, batch)
            stores[label] = ch
        count_text_tokens("warm up the encoder")

        async def prepare(label: str) -> float:
            sync = ThreadSync(store)
            sync._names = {u: (n, time.monotonic() + 3600) for u, n in names.items()}  # names cached, as in a warm process
            sync._continuous.add((stores[label], thread_ts))  # the bot listened all along: no Slack read
            source = SlackThreadSource(sync, None, channel_id=stores[label], thread_ts=thread_ts,  # type: ignore[arg-type]
                                       question_ts="1800000000.000100", bot_user_id="U0BOT", bot_id=None)
            source.looked = _no_mark  # type: ignore[method-assign]  # measure the same snapshot every round
            start = time.perf_counter()
            text, context = await question_with_context(source, question=question, question_ts="1800000000.000100",
                                                        asker_id="U0ALICE", budget_tokens=90_000)
            if label == "now":
                user_message_tokens(text, context)
            else:  # the first version counted every line, then the context, then the whole user message
                for message in context.messages:
                    count_text_tokens(message.text)
                count_text_tokens(text)
            elapsed = time.perf_counter() - start
            assert len(context.messages) == messages, len(context.messages)
            return elapsed * 1000

        timings: dict[str, list[float]] = {"now": [], "reference": []}
        for _ in range(rounds):
            for label in ("now", "reference"):
                timings[label].append(await prepare(label))
        await store.close()
    now, ref = statistics.median(timings["now"]), statistics.median(timings["reference"])
    print(f"turn preparation, {messages}-message thread (median of {rounds}): now {now:.1f} ms, "
          f"reference {ref:.1f} ms (ratio {now / ref:.2f}; target < 10 ms)")


async def _no_mark(upto_ts: str, shown: object) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(scenario(args.messages, args.turns))
    asyncio.run(preparation(args.messages, args.rounds))


if __name__ == "__main__":
    main()
