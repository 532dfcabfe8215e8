"""Benchmark: what one tool round (model → get_weather → model) costs beyond the fakes' own latency.

In one process, the real Conversations/Agent/AnthropicProvider/Store/get_weather run against the
Anthropic and Open-Meteo fakes (each on its own thread and event loop). For every turn we measure
the end-to-end time of `Conversations.handle` and, in the same run, the time spent inside the fakes
as the client sees it: each model call from request to its final message (a timing wrapper around
the provider) and each Open-Meteo request (aiohttp request tracing on the tool session). What is
left is the bot's own overhead: SQLite writes, token counting and history fitting, schema
validation, JSON, scheduling.

Two kinds of turn, interleaved so machine load hits both alike:
- plain: one model call, no tool (the reference);
- tool:  model call → get_weather (geocoding + forecast requests) → model call.

Printed: median / p90 turn time, the fakes' share, the overhead in ms and as a ratio to the fakes'
time, and the extra overhead a tool round adds over a plain turn. No Slack: a recording reply sink
stands in for SlackReply (its throttled edits are benchmarked in bench/spine.py).

    .venv/bin/python bench/tool_round.py [--turns 40]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, AsyncIterator, Sequence

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import load_settings  # noqa: E402
from bot.conversation import Conversations, Turn  # noqa: E402
from bot.llm import provider_for  # noqa: E402
from bot.llm.base import Provider  # noqa: E402
from bot.errors import Failure  # noqa: E402
from bot.messages import MessageDone, ModelRequest, StreamEvent, ToolUseBlock  # noqa: E402
from bot.store.sqlite import SqliteStore  # noqa: E402
from tests.fakes.anthropic import DEFAULT_API_KEY, FakeAnthropic, Reply  # noqa: E402
from tests.fakes.open_meteo import FakeOpenMeteo  # noqa: E402
from tools.extract_record import extract_record  # noqa: E402
from tools.get_weather import get_weather  # noqa: E402
from tools.registry import Registry  # noqa: E402


class TimedProvider:
    """Passes calls through and records how long each took, request to final message."""

    def __init__(self, inner: Provider):
        self.inner = inner
        self.name = inner.name
        self.durations: list[float] = []

    async def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]:
        started = time.perf_counter()
        async for event in self.inner.stream(request):
            if isinstance(event, MessageDone):
                self.durations.append(time.perf_counter() - started)
            yield event

    async def aclose(self) -> None:
        await self.inner.aclose()


class RecordingReply:
    """The Reply protocol without Slack: keeps the text and the status lines."""

    def __init__(self) -> None:
        self.text = ""
        self.statuses: list[str] = []
        self.failed: str | None = None

    async def start(self) -> None: ...
    async def finish(self, *, notice: str | None = None) -> None: ...
    async def say(self, text: str) -> None: self.text = text
    async def fail(self, failure: Failure) -> None: self.failed = failure.message
    def append(self, text: str) -> None: self.text += text
    def tools_started(self, tool_uses: Sequence[ToolUseBlock]) -> None:
        self.statuses.extend(u.name for u in tool_uses)
    def separate(self) -> None: self.text += "\n\n"


def scripted_model(body: dict[str, Any]) -> Reply:
    last = body["messages"][-1]["content"]
    if any(b["type"] == "tool_result" for b in last):
        return Reply.text("It is sunny in Lisbon today, with a light breeze from the north-west.")
    if "weather" in last[-1]["text"]:
        return Reply.tool("get_weather", {"place": "Lisbon"})
    return Reply.text("Lisbon is the capital of Portugal, on the Tagus estuary.")


def weather_tracing(durations: list[float]) -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()

    async def on_start(session: Any, context: SimpleNamespace, params: Any) -> None:
        context.started = time.perf_counter()

    async def on_end(session: Any, context: SimpleNamespace, params: Any) -> None:
        durations.append(time.perf_counter() - context.started)

    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    return trace


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(turns: int) -> None:
    model = FakeAnthropic(respond=scripted_model)
    model.start_in_thread()
    try:
        with FakeOpenMeteo.in_thread() as weather, tempfile.TemporaryDirectory() as tmp:
            settings = load_settings(
                ANTHROPIC_API_KEY=DEFAULT_API_KEY, ANTHROPIC_BASE_URL=model.base_url,
                THREADBOT_DB=str(Path(tmp) / "bench.db"), THREADBOT_USER_RPM="100000",
                THREADBOT_USER_DAILY_USD="100000", THREADBOT_DAILY_USD="100000", **weather.env(),
            )
            inner, model_id = provider_for(settings)
            provider = TimedProvider(inner)
            store = SqliteStore(settings.db_path)
            http_times: list[float] = []
            async with aiohttp.ClientSession(trace_configs=[weather_tracing(http_times)]) as http:
                conversations = Conversations(
                    settings=settings, store=store, provider=provider, model=model_id,
                    registry=Registry([get_weather, extract_record]), http=http,
                )
                samples: dict[str, list[dict[str, float]]] = {"plain": [], "tool": []}
                # Two warm-up turns (imports, tokenizer, connection pools) are not counted.
                for i in range(turns + 1):
                    for kind in ("plain", "tool"):
                        sample = await one_turn(conversations, provider, http_times, kind, i)
                        if i:
                            samples[kind].append(sample)
            await provider.aclose()
            await store.close()
    finally:
        model.stop_in_thread()
    report(samples, turns)


async def one_turn(conversations: Conversations, provider: TimedProvider, http_times: list[float],
                   kind: str, i: int) -> dict[str, float]:
    text = "what's the weather in Lisbon?" if kind == "tool" else "what is Lisbon?"
    turn = Turn(team_id="T0BENCH", channel_id="C0BENCH", thread_ts=f"{1700000000 + i}.{kind == 'tool':06d}",
                user_id="U0BENCH", text=text, ts=f"{1700000000 + i}.{kind == 'tool':06d}", surface="mention")
    reply = RecordingReply()
    models_before, http_before = len(provider.durations), len(http_times)
    started = time.perf_counter()
    await conversations.handle(turn, reply)
    total = time.perf_counter() - started
    assert reply.failed is None, reply.failed
    model_calls = provider.durations[models_before:]
    http_calls = http_times[http_before:]
    assert len(model_calls) == (2 if kind == "tool" else 1) and len(http_calls) == (2 if kind == "tool" else 0)
    fakes = sum(model_calls) + sum(http_calls)
    return {"total": total, "fakes": fakes, "overhead": total - fakes}


def report(samples: dict[str, list[dict[str, float]]], turns: int) -> None:
    ms = 1000.0
    print(f"tool round benchmark: {turns} turns of each kind, fakes on their own threads, no Slack")
    print(f"{'turn':6} {'total p50':>10} {'p90':>8} {'in fakes p50':>13} {'overhead p50':>13} {'p90':>8} "
          f"{'total/fakes':>12}")
    medians = {}
    for kind, rows in samples.items():
        total = [r["total"] for r in rows]
        fakes = [r["fakes"] for r in rows]
        overhead = [r["overhead"] for r in rows]
        ratio = statistics.median(r["total"] / r["fakes"] for r in rows)
        medians[kind] = statistics.median(overhead)
        print(f"{kind:6} {statistics.median(total) * ms:9.1f}ms {pct(total, 0.9) * ms:6.1f}ms "
              f"{statistics.median(fakes) * ms:11.1f}ms {medians[kind] * ms:11.1f}ms "
              f"{pct(overhead, 0.9) * ms:6.1f}ms {ratio:11.2f}x")
    extra = medians["tool"] - medians["plain"]
    print(f"one tool round adds {extra * ms:.1f} ms of bot overhead beyond the fakes "
          f"(tool-turn overhead / plain-turn overhead = {medians['tool'] / medians['plain']:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(run(args.turns))


if __name__ == "__main__":
    main()
