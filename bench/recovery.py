"""Benchmark: start-up with 1,000 unfinished turns in the database, against a start with none, in one run.

Each round starts the real `threadbot run` (HTTP mode) against the loopback fakes twice: on a database
a killed process left with N open turns (most older than THREADBOT_RESUME_WINDOW_S, so they are closed
with the notice; some recent, so they are answered again), and on an empty one. Printed per start:
seconds until /healthz answers, and seconds from delivering a new @mention until its final answer is in
Slack. Target: the first new answer at most 1 s later than with no open turns.

    .venv/bin/python bench/recovery.py [--turns 1000] [--recent 100] [--rounds 3]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.store import NewTurn  # noqa: E402
from bot.store.sqlite import SqliteStore  # noqa: E402
from tests.botproc import BotProcess  # noqa: E402
from tests.fakes import slack as fs  # noqa: E402
from tests.fakes.anthropic import FakeAnthropic  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402


async def seed(db: Path, slack: FakeSlack, *, turns: int, recent: int) -> None:
    """A database as a SIGKILL leaves it: `turns` open answers of a dead owner, each with its placeholder."""
    store = SqliteStore(db)
    for i in range(turns):
        ts = fs.next_ts()
        slack.add_message(fs.CHANNEL_ID, f"question {i}?", ts=ts)
        placeholder = slack.add_message(fs.CHANNEL_ID, "_Thinking…_", user=fs.BOT_USER_ID, thread_ts=ts,
                                        bot_id=fs.BOT_ID)
        turn_id = await store.claim_turn(f"msg:{fs.CHANNEL_ID}:{ts}", owner="killed", turn=NewTurn(
            kind="answer", team_id=fs.TEAM_ID, channel_id=fs.CHANNEL_ID, thread_ts=ts, ts=ts,
            user_id=f"U{i % 50:04d}", surface="mention", text=f"question {i}?",
            details={"bot_user_id": fs.BOT_USER_ID}))
        assert turn_id is not None
        await store.turn_shown(turn_id, reply_ts=placeholder, shown_text="_Thinking…_", streaming=False)
    # All but `recent` were asked an hour ago: outside the resume window.
    store.conn.execute("UPDATE turns SET accepted_at = accepted_at - 3600 WHERE id > ?", (recent,))
    await store.close()


async def one_start(slack: FakeSlack, model: FakeAnthropic, workdir: Path, *, label: str) -> tuple[float, float]:
    bot = BotProcess(slack_api_url=slack.api_url, anthropic_url=model.base_url, db_path=workdir / "bot.db",
                     socket_mode=False, log_path=workdir / "bot.log", extra_env={"THREADBOT_LOG_LEVEL": "WARNING"})
    started = time.perf_counter()
    await asyncio.get_running_loop().run_in_executor(None, bot.start)
    healthy = time.perf_counter() - started
    try:
        question = f"a new question after the {label} start"
        event = fs.app_mention(question)
        sent = time.perf_counter()
        await slack.deliver_http(bot.events_url, fs.event_callback(event))
        expected = f"echo: {question}"  # the bot answers the question without its @mention
        await slack.wait_for(lambda: any(m.text == expected and m.user == fs.BOT_USER_ID
                                         for m in slack.messages_in_thread(fs.CHANNEL_ID, event["ts"])),
                             timeout=60, what="the new answer")
        return healthy, time.perf_counter() - sent
    finally:
        bot.stop()


async def main(turns: int, recent: int, rounds: int) -> None:
    slack = FakeSlack()
    slack.start_in_thread()
    model = FakeAnthropic()
    model.start_in_thread()
    results: dict[str, list[tuple[float, float]]] = {"none": [], "open": []}
    try:
        for _ in range(rounds):
            for label in ("none", "open"):  # interleaved: machine load hits both alike
                with tempfile.TemporaryDirectory() as tmp:
                    workdir = Path(tmp)
                    if label == "open":
                        await seed(workdir / "bot.db", slack, turns=turns, recent=recent)
                    results[label].append(await one_start(slack, model, workdir, label=label))
    finally:
        slack.stop_thread()
        model.stop_in_thread()
    median = {k: (statistics.median(h for h, _ in v), statistics.median(a for _, a in v)) for k, v in results.items()}
    print(f"{turns} open turns ({recent} recent), {rounds} rounds, medians:")
    print(f"  start-up to /healthz: none {median['none'][0]:.2f} s, open {median['open'][0]:.2f} s "
          f"(+{median['open'][0] - median['none'][0]:.2f} s)")
    delta = median["open"][1] - median["none"][1]
    print(f"  first new answer:     none {median['none'][1]:.2f} s, open {median['open'][1]:.2f} s "
          f"(+{delta:.2f} s; target <= +1 s: {'ok' if delta <= 1.0 else 'MISSED'})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--recent", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.recent, args.rounds))
