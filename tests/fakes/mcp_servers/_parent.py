"""Test MCP servers end when the process that started them is gone (the SDK runs them in their own session)."""
from __future__ import annotations

import os
import threading
import time


def exit_with_parent() -> None:
    parent = os.getppid()

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(0)
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()
