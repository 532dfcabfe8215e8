"""Process health: the start-up heap is collected once and then kept out of the collector's way."""
from __future__ import annotations

import gc
import weakref

from bot.slack.health import settle_start_up_heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_settling_collects_start_up_garbage_first_and_freezes_what_stays():
    kept = Node()
    kept.other = Node()
    cycle = Node()
    cycle.other = Node()
    cycle.other.other = cycle  # garbage only the cyclic collector can free
    gone = weakref.ref(cycle)
    del cycle
    try:
        settle_start_up_heap()
        assert gone() is None  # collected before the freeze: nothing start-up left behind leaks
        assert gc.get_freeze_count() > 0
        assert not any(obj is kept for obj in gc.get_objects())  # frozen: no collection walks it again
    finally:
        gc.unfreeze()  # the test process goes on as before
    assert any(obj is kept for obj in gc.get_objects())
