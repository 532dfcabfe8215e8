"""`threadbot console`: the real process through a pipe and a pseudo-terminal, against the model fakes."""
from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from bot.config import load_settings
from bot.console.commands import usage_text
from bot.console.render import StreamWriter
from bot.console.reply import ConsoleReply
from bot.console.screen import Screen
from bot.console.session import Console
from bot.errors import Failure
from bot.store.sqlite import SqliteStore
from tests.fakes.anthropic import ErrorReply, FakeAnthropic, Reply, echo_text
from tests.fakes.openai import FakeOpenAI, ScriptedReply
from tests.store_rows import usage_rows

THREADBOT = Path(sys.executable).with_name("threadbot")
START_TIMEOUT = 90.0  # imports alone take ~10 s on the loaded CI machine
REF = re.compile(r"\(ref ([0-9a-f]{8})\)")
BOLD, CYAN, RESET = "\x1b[1m", "\x1b[36m", "\x1b[0m"  # the SGR codes a terminal shows bold, code, plain in

# Token counts the fake reports per question, so /usage can be checked to the token.
TOKENS = {"hello there": (12_345, 678), "and again": (23_456, 789), "still here": (34_567, 890)}


def _answer(body: dict) -> Reply | ErrorReply:
    last = body["messages"][-1]["content"]
    text = last if isinstance(last, str) else " ".join(b.get("text", "") for b in last if b["type"] == "text")
    if text == "fail please":
        return ErrorReply.overloaded()  # every retry too: the call fails for good
    tokens_in, tokens_out = TOKENS.get(text, (100, 10))
    return Reply.text(echo_text(body), input_tokens=tokens_in, output_tokens=tokens_out)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # Only what the console needs: no Slack variable at all.
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "THREADBOT_DB": str(tmp_path / "bot.db"),
            "PYTHONUNBUFFERED": "1", **extra}


@pytest.fixture(scope="module")
def anthropic():
    fake = FakeAnthropic(respond=_answer)
    url = fake.start_in_thread()
    yield fake, url
    fake.stop_in_thread()


def _user_texts(messages: list[dict]) -> list[tuple[str, str]]:
    out = []
    for m in messages:
        content = m["content"]
        text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
        out.append((m["role"], text))
    return out


# --- the real process ----------------------------------------------------------------------------


async def test_pipe_then_resume_in_a_terminal(anthropic, tmp_path):
    fake, url = anthropic
    env = _env(tmp_path, ANTHROPIC_API_KEY="sk-ant-fake-test-key", ANTHROPIC_BASE_URL=url)
    first = len(fake.requests)
    lines = ["hello there", "and again", "fail please", "still here", "/usage"]
    done = subprocess.run([str(THREADBOT), "console"], input="\n".join(lines) + "\n", env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=START_TIMEOUT + 60)
    assert done.returncode == 0, done.stderr

    # Plain answers, exactly as the model wrote them, one per question; the failure is one short line.
    answers, _, report = done.stdout.partition("Usage for user console")
    failure = REF.search(answers)
    assert failure, done.stdout
    ref = failure.group(1)
    assert answers == ("echo: hello there\necho: and again\n"
                       f"⚠ The model is overloaded right now. Please try again in a minute. (ref {ref})\n"
                       "echo: still here\n")
    assert "\x1b[" not in done.stdout
    assert f"ref={ref}" in done.stderr and "Traceback" not in done.stderr

    # The second request carries the first turn; the one after the failure carries the closed turn.
    requests = fake.requests[first:]
    second = next(r for r in requests if _user_texts(r["messages"])[-1] == ("user", "and again"))
    assert _user_texts(second["messages"]) == [
        ("user", "hello there"), ("assistant", "echo: hello there"), ("user", "and again")]
    last = requests[-1]
    assert _user_texts(last["messages"])[-1] == ("user", "still here")
    assert ("user", "fail please") in _user_texts(last["messages"])

    # One usage row per model call, all for the console user; /usage shows the exact totals.
    store = SqliteStore(tmp_path / "bot.db")
    rows = usage_rows(store, user_id="console")
    await store.close()
    assert len(rows) == 4
    assert {(r.surface, r.channel_id, r.team_id) for r in rows} == {("console", "console", "console")}
    assert sorted(r.input_tokens for r in rows) == [0, 12_345, 23_456, 34_567]
    assert [r.error for r in rows].count("ModelOverloaded") == 1
    today = next(line for line in report.splitlines() if line.startswith("Today"))
    assert today.split()[1:4] == ["4", "70,368", "2,357"]

    thread = re.search(r"--thread (\d+\.\d+)", done.stderr).group(1)

    # --- the same conversation, resumed in a pseudo-terminal ---
    fake.add(Reply.text("# Heading\nSome **bold** text and `code`.\nend of first answer",
                        token_delay_s=0.05, input_tokens=50, output_tokens=20))
    fake.add(Reply.text("partial words then a lot more " * 20, token_delay_s=0.1))
    term = Terminal([str(THREADBOT), "console", "--thread", thread], env=env, cwd=tmp_path)
    try:
        term.expect(f"resuming thread {thread} (8 earlier messages)", timeout=START_TIMEOUT)
        term.expect("you> ")
        term.send("show markdown\r")
        term.expect("Some")  # streamed: the line is on screen while the answer is still coming
        assert "end of first answer" not in term.output
        term.expect("end of first answer")
        term.expect("you> ")
        shown = term.output
        assert f"{BOLD}bold{RESET}" in shown and f"{CYAN}code{RESET}" in shown and "Heading" in shown
        assert "Some **bold** text and `code`.\r\x1b[JSome \x1b[1mbold" in shown  # raw while streaming, then redrawn
        resumed = _user_texts(fake.requests[-1]["messages"])
        assert resumed[0] == ("user", "hello there") and resumed[-1] == ("user", "show markdown")

        term.send("tell me a long story\r")
        term.expect("partial words")
        term.send("\x03")  # Ctrl-C stops this answer only
        term.expect("(interrupted)")
        term.expect("you> ")
        term.send("\x03")  # Ctrl-C at the prompt quits
        assert term.wait(timeout=30) == 0
    finally:
        term.close()
    assert "Traceback" not in term.output
    assert f"threadbot console --thread {thread}" in term.output

    store = SqliteStore(tmp_path / "bot.db")
    conversation = await store.conversation_id(team_id="console", channel_id="console", thread_ts=thread, user_id="console")
    history = [m.message for m in await store.history(conversation)]
    await store.close()
    # The interrupted turn is closed: the question has an answer, so the next request is valid.
    assert [(m.role, m.content[0].text) for m in history[-2:-1]] == [("user", "tell me a long story")]
    assert history[-1].role == "assistant" and history[-1].content[0].text
    assert "restarted" not in term.output and "⚠" not in term.output


async def test_local_openai_compatible_model_without_a_key(tmp_path):
    fake = FakeOpenAI(api_key=None, reject_max_tokens=False,
                      responder=lambda r: ScriptedReply(text=f"local says: {r.messages[-1]['content']}"))
    url = fake.start_in_thread()
    env = _env(tmp_path, THREADBOT_MODEL="openai:some-local-model", OPENAI_BASE_URL=url)
    term = Terminal([str(THREADBOT), "console"], env=env, cwd=tmp_path)
    try:
        term.expect("threadbot console — openai:some-local-model, thread ", timeout=START_TIMEOUT)
        term.expect("you> ")
        term.send("hi there\r")
        term.expect("local says: hi there\r\n")
        term.expect("you> ")
        term.send("\x04")  # Ctrl-D quits
        assert term.wait(timeout=30) == 0
    finally:
        term.close()
        fake.stop_thread()
    assert "Traceback" not in term.output
    (chat,) = fake.chat_requests
    assert chat.body["model"] == "some-local-model"
    assert chat.messages[-1] == {"role": "user", "content": "hi there"}
    store = SqliteStore(tmp_path / "bot.db")
    (row,) = usage_rows(store, user_id="console")
    await store.close()
    assert row.model == "some-local-model" and row.surface == "console" and row.error is None


def test_missing_model_key_is_one_line(tmp_path):
    done = subprocess.run([str(THREADBOT), "console"], input="hi\n", env=_env(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=START_TIMEOUT)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "threadbot: ANTHROPIC_API_KEY is not set: THREADBOT_MODEL=claude-sonnet-4-6 needs an Anthropic API key."]
    assert done.stdout == ""


def _read_line(stream, *, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "no output from threadbot console"
    return stream.readline()


class Terminal:
    """A process on a pseudo-terminal (its controlling terminal, so Ctrl-C and Ctrl-D work)."""

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the program
            try:
                os.chdir(cwd)
                os.execve(argv[0], argv, {**env, "TERM": "xterm"})
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))
        self.output = ""
        self._seen = 0
        self.status: int | None = None

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def expect(self, text: str, *, timeout: float = 30.0) -> None:
        """Wait until `text` appears after what the previous expect() matched."""
        deadline = time.monotonic() + timeout
        while (found := self.output.find(text, self._seen)) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise AssertionError(f"did not see {text!r}; output was:\n{self.output!r}")
        self._seen = found + len(text)

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        self.output += data.decode(errors="replace")
        return bool(data)

    def wait(self, *, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read(0.1)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
        raise AssertionError(f"threadbot console did not exit; output was:\n{self.output!r}")

    def close(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        os.close(self.fd)


# --- in-process pieces -----------------------------------------------------------------------------


def test_plain_stream_is_exactly_the_model_text():
    out = io.StringIO()
    screen = Screen(out, io.StringIO(), ansi=False)
    reply = ConsoleReply(screen)
    for piece in ["**Bold** and `co", "de`\n", "\x1b[31mraw\x1b[0m"]:
        reply.append(piece)
    reply.set_status("Checking the weather…")
    reply.separate()
    reply.append("after the tool")
    assert out.getvalue() == "**Bold** and `code`\n\x1b[31mraw\x1b[0m\n\nafter the tool"
    assert screen.stderr.getvalue() == "… Checking the weather…\n"


def test_terminal_rendering_strips_markup_and_escape_codes():
    out: list[str] = []
    writer = StreamWriter(out.append, ansi=True, width=lambda: 80)
    writer.feed("## Plan\n- one **two**\n```\nx = `y`\n```\nbad \x1b[2Jclear")
    writer.close()
    screen = "".join(out)
    assert f"{BOLD}Plan{RESET}\n" in screen
    assert f"• one {BOLD}two{RESET}\n" in screen
    assert f"{CYAN}x = `y`{RESET}" in screen  # inside a fence nothing is restyled
    assert "\x1b[2J" not in screen and "bad [2Jclear" in screen


async def test_failure_is_shown_in_terminal_words():
    out = io.StringIO()
    await ConsoleReply(Screen(out, io.StringIO(), ansi=False)).fail(Failure("The model failed to answer.", "ab12cd34"))
    assert out.getvalue() == "⚠ The model failed to answer. (ref ab12cd34)\n"


async def test_usage_words(tmp_path):
    store = SqliteStore(tmp_path / "u.db")
    try:
        now = datetime(2026, 1, 2, tzinfo=timezone.utc)
        assert (await usage_text(store, text="", now=now)).startswith("Usage for user console")
        assert (await usage_text(store, text="team 7", now=now)).startswith("Usage for the whole workspace")
        assert "Last 7 days" in await usage_text(store, text="7", now=now)
        assert (await usage_text(store, text="bogus", now=now)).startswith("I didn't understand 'bogus'")
        assert await usage_text(store, text="400", now=now) == "Pick between 1 and 365 days."
    finally:
        await store.close()


class _WordEmbedder:
    """A tiny deterministic embedder (hashed words), so knowledge commands run without the ONNX model."""

    model, dim, window = "test-hash", 32, 256

    def embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                vectors[row, hash(word) % self.dim] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)


async def test_upload_list_search_delete(tmp_path):
    store = SqliteStore(tmp_path / "k.db")
    out = io.StringIO()
    settings = load_settings(THREADBOT_DB=str(tmp_path / "k.db"))
    services = SimpleNamespace(store=store, settings=settings)
    console = Console(services=services, screen=Screen(out, io.StringIO(), ansi=False), thread_ts="1.0",
                      embedder_factory=lambda s: _WordEmbedder())
    doc = tmp_path / "handbook.md"
    doc.write_text("# Holidays\n\nEveryone gets twenty-five vacation days a year.\n")
    try:
        await console.handle_line(f"/upload {doc}")
        assert "Added handbook.md" in out.getvalue() and "scope user:console" in out.getvalue()
        await console.handle_line("/knowledge list")
        assert re.search(r"\d+\s+handbook\.md — user:console, 1 chunks", out.getvalue())
        await console.handle_line("/knowledge search vacation days")
        assert "[1] handbook.md, Holidays" in out.getvalue()
        document_id = (await store.knowledge_documents(None))[0].id
        await console.handle_line(f"/knowledge delete {document_id}")
        assert f"Deleted document {document_id} (handbook.md)." in out.getvalue()
        assert await store.knowledge_documents(None) == []
    finally:
        await store.close()
