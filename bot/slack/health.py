"""Process health for /healthz: event-loop lag (how late the loop runs scheduled work) and peak memory;
and the one thing start-up does for it, taking the start-up heap out of the garbage collector's way."""
from __future__ import annotations

import asyncio
import gc
import logging
import resource
import sys
import time
from collections import deque

log = logging.getLogger(__name__)


class LoopLagMonitor:
    """Samples how late a short sleep wakes up. A blocked event loop shows up here before users notice."""

    def __init__(self, *, interval_s: float = 0.05, window: int = 2400):
        self.interval_s = interval_s
        self.samples: deque[float] = deque(maxlen=window)  # the last ~2 minutes at 50 ms
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.samples.append(max(0.0, time.perf_counter() - started - self.interval_s))

    def percentile_ms(self, p: float) -> float:
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 2)

    def reset(self) -> None:
        self.samples.clear()


def peak_rss_mb() -> float:
    """Peak resident memory of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def settle_start_up_heap() -> None:
    """Collect once, then freeze what is left: every object start-up made (modules, the SDKs' types,
    tokenizer tables) stays alive for the whole process, and Python's full collections would walk
    all of them, about a million objects, each time. Measured under a burst of 100 new conversations
    (bench/spine.py), each full collection stopped the event loop for 120–650 ms; the objects made
    after this call are few by comparison, so full collections stay short. Called once, when the
    process starts serving (garbage left at that moment is collected first, so nothing leaks).
    """
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info("start-up heap settled: %d objects frozen in %.0f ms", gc.get_freeze_count(),
             (time.perf_counter() - started) * 1000)
