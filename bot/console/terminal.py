"""Reading the console's input lines, and Ctrl-C at the prompt although the SDKs keep worker threads."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import IO

PROMPT = "you> "
POKES, POKE_INTERVAL_S = 20, 0.05  # see forward_sigint_to_main_thread


def forward_sigint_to_main_thread() -> None:
    """Make Ctrl-C at the prompt work although the SDKs keep worker threads.

    The kernel may deliver SIGINT to any thread, and even in the main thread it can land just before
    readline blocks in select(). Either way Python only notes it, and the main thread, waiting in
    input(), never wakes up. A watcher thread learns of every signal through the wakeup fd and pokes
    the main thread with SIGUSR1 (a no-op handler) for a moment: the interrupted select() makes Python
    run the pending SIGINT handler there, raising KeyboardInterrupt as at a normal prompt.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.signal(signal.SIGUSR1, lambda *_: None)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def watch() -> None:
        while True:
            if signal.SIGINT in os.read(read_fd, 64):
                for _ in range(POKES):
                    signal.pthread_kill(main_thread, signal.SIGUSR1)
                    time.sleep(POKE_INTERVAL_S)

    threading.Thread(target=watch, name="sigint-forwarder", daemon=True).start()


def read_line(stdin: IO[str], stdout: IO[str], stderr: IO[str], *, interactive: bool) -> str | None:
    """The next input line, or None at end of input (Ctrl-D) or Ctrl-C at the prompt."""
    try:
        if interactive and stdout.isatty() and stdin is sys.stdin:
            try:
                import readline  # noqa: F401  # line editing and history for input()
            except ImportError:
                pass
            return input(PROMPT)
        show_prompt(stderr, interactive=interactive)
        line = stdin.readline()
        return line.rstrip("\n") if line else None
    except EOFError:
        if interactive:
            stdout.write("\n")
        return None
    except KeyboardInterrupt:
        if interactive:
            stdout.write("\n")
        return None


def show_prompt(stderr: IO[str], *, interactive: bool) -> None:
    """The prompt, where input() does not show it (a pipe shows none)."""
    if interactive:
        stderr.write(PROMPT)
        stderr.flush()
