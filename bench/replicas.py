"""100 concurrent threads answered by one `threadbot run` replica and by two on one PostgreSQL database.

    .venv/bin/python bench/replicas.py [--threads 100] [--url postgresql://…]

Both runs use the same database server, loopback fakes of Slack and the model, and the same answers;
the two-replica run spreads the events round-robin (as a load balancer would). Printed: the time
until every thread has its final answer, and the ratio two / one. The workspace's chat.update budget
(50 a minute, burst 20) is one budget across replicas, so when the answers' final edits exceed the
burst both runs wait on that same budget: two replicas add availability, not edits.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.slack.mrkdwn import to_mrkdwn  # noqa: E402
from tests.botproc import BotProcess  # noqa: E402
from tests.fakes import slack as fs  # noqa: E402
from tests.fakes.anthropic import FakeAnthropic, Reply  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402

ANSWER = "Replicas share one database, so any of them can answer any thread."


async def answer_all(slack: FakeSlack, bots: list[BotProcess], threads: int, tag: str) -> float:
    expected = to_mrkdwn(ANSWER)
    events = [fs.app_mention(f"question {tag}{i}", channel=f"C{tag}{i}") for i in range(threads)]
    started = time.monotonic()

    async def one(i: int, event: dict) -> None:
        await slack.deliver_http(bots[i % len(bots)].events_url, fs.event_callback(event))
        await slack.wait_for(lambda: next((m for m in slack.messages_in_thread(event["channel"], event["ts"])
                                           if m.user == fs.BOT_USER_ID and m.text == expected), None), timeout=600)

    await asyncio.gather(*(one(i, e) for i, e in enumerate(events)))
    return time.monotonic() - started


async def run(args) -> None:
    slack, model = FakeSlack(), FakeAnthropic(respond=lambda body: Reply.text(ANSWER, chunk_chars=16,
                                                                              token_delay_s=0.02))
    slack.start_in_thread()
    model.start_in_thread()
    server = None
    try:
        if args.url is None:
            from tests.pg import start_server

            server = start_server(Path(tempfile.mkdtemp(prefix="threadbot-bench-pg-")))
        times = {}
        for count in (1, 2):
            url = args.url or server.create_database()
            with tempfile.TemporaryDirectory() as tmp:
                bots = [BotProcess(slack_api_url=slack.api_url, anthropic_url=model.base_url,
                                   db_path=Path(tmp) / f"unused{i}.db", socket_mode=False,
                                   log_path=Path(tmp) / f"bot{i}.log",
                                   extra_env={"THREADBOT_DATABASE_URL": url, "THREADBOT_USER_RPM": "100000",
                                              "THREADBOT_LOG_LEVEL": "WARNING"}) for i in range(count)]
                for bot in bots:
                    bot.start()
                try:
                    await answer_all(slack, bots, 1, f"W{count}x")  # warm-up: auth.test, imports
                    times[count] = await answer_all(slack, bots, args.threads, f"R{count}x")
                finally:
                    for bot in bots:
                        bot.stop()
            print(f"{count} replica{'s' if count > 1 else ''}: {args.threads} threads answered in "
                  f"{times[count]:.1f} s")
        print(f"ratio two / one: {times[2] / times[1]:.2f}")
    finally:
        if server is not None:
            server.stop()
        slack.stop_thread()
        model.stop_in_thread()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=100)
    parser.add_argument("--url", help="an existing PostgreSQL database (default: a throwaway embedded one)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
