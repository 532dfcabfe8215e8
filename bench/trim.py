"""Benchmark: trimming a 2,000-message thread (tool pairs, stored token counts) to the context window.

Target: under 5 ms per call. Prints the median and its ratio to two references measured in the same
run on the same history: summing the stored token counts (the floor of any trimming) and JSON-decoding
the stored content (what loading the history costs anyway).

    .venv/bin/python bench/trim.py
"""
from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock  # noqa: E402
from bot.conversation.context_window import cache_point, fit_history  # noqa: E402
from bot.store.sqlite import SqliteStore  # noqa: E402
from bot.llm.tokens import count_message_tokens, count_tools_tokens  # noqa: E402

WORDS = ("the deploy failed because the config map was missing a key so we rolled back and opened a ticket "
         "for the platform team to add validation before the next release window on thursday").split()
MODEL = "claude-sonnet-4-6"
RUNS = 200


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def build_thread(rng: random.Random, size: int) -> list[Message]:
    messages: list[Message] = []
    turn = 0
    while len(messages) < size:
        messages.append(Message("user", [TextBlock(words(rng, rng.randint(10, 150)))]))
        for r in range(rng.choice([0, 0, 1, 2])):
            use = ToolUseBlock(id=f"toolu_{turn}_{r}", name="search_knowledge", input={"query": words(rng, 6)})
            messages.append(Message("assistant", [TextBlock("Let me check."), use]))
            messages.append(Message("user", [ToolResultBlock(use.id, words(rng, rng.randint(100, 1200)))]))
        messages.append(Message("assistant", [TextBlock(words(rng, rng.randint(60, 450)))]))
        turn += 1
    return messages[:size] if messages[size - 1].role == "assistant" else messages[: size - 1]


def median_ms(fn, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def store_thread(path: Path, thread: list) -> tuple[list, list[str]]:
    store = SqliteStore(path)
    cid = await store.conversation_id(team_id="T1", channel_id="C1", thread_ts="1.0", user_id="U1")
    await store.append_messages(cid, thread, token_counts=[count_message_tokens(m) for m in thread])
    history = await store.history(cid)
    raw = [row[0] for row in store.conn.execute("SELECT content_json FROM messages ORDER BY id")]
    await store.close()
    return history, raw


def main() -> None:
    rng = random.Random(7)
    thread = build_thread(rng, 2_000)
    with tempfile.TemporaryDirectory() as tmp:
        history, raw = asyncio.run(store_thread(Path(tmp) / "bench.db", thread))

    total = sum(h.token_count or 0 for h in history)
    kept = fit_history(history, model=MODEL, max_tokens=1024, system_tokens=400, tools_tokens=count_tools_tokens([]))
    print(f"thread: {len(history):,} messages, {total:,} stored tokens; kept {len(kept):,} messages, "
          f"cache point at {cache_point(kept)}")

    trim = median_ms(lambda: fit_history(history, model=MODEL, max_tokens=1024, system_tokens=400, tools_tokens=0))
    summing = median_ms(lambda: sum(h.token_count for h in history))
    decoding = median_ms(lambda: [json.loads(r) for r in raw])
    print(f"fit_history median: {trim:.3f} ms (target < 5 ms: {'ok' if trim < 5 else 'MISSED'})")
    whole = median_ms(lambda: fit_history(history, model="claude-opus-5", max_tokens=1024, system_tokens=400,
                                          tools_tokens=0), runs=50)
    print(f"fit_history, whole thread fits (1M window): {whole:.3f} ms")
    print(f"reference  sum of stored counts: {summing:.3f} ms  -> trim is {trim / summing:.1f}x")
    print(f"reference  json-decode history:  {decoding:.3f} ms  -> trim is {trim / decoding:.2f}x")


if __name__ == "__main__":
    main()
