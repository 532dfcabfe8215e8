"""`threadbot ingest` and `threadbot search`: the knowledge base from the command line, for operators."""
from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import rich.progress
from rich.console import Console

from bot.config import Settings
from bot.errors import ConfigError
from bot.store import open_store
from knowledge.embed import make_embedder
from knowledge.errors import KnowledgeError
from knowledge.ingest import IngestResult, Progress, ingest_path
from knowledge.scopes import validate_scope
from knowledge.search import SearchHit, search

TTY_REDRAW_S = 0.1
PLAIN_LINE_S = 2.0  # without a terminal, a progress line at most this often (plus every stage change)


class ProgressLine:
    """One updating progress line on stderr: a rich live bar on a terminal, plain lines otherwise.

    rich redraws in place and leaves nothing behind (transient); it has no plain-line mode of its own,
    so without a terminal (a log file, CI) a line is printed per stage and at most every PLAIN_LINE_S.
    """

    def __init__(self, stream: IO[str], *, tty: bool | None = None):
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self._last = 0.0
        self._stage = ""
        self._live: rich.progress.Progress | None = None
        self._task: rich.progress.TaskID | None = None

    def update(self, event: Progress) -> None:
        now = time.monotonic()
        changed = event.stage != self._stage
        if event.stage == "done" or not (changed or now - self._last >= (TTY_REDRAW_S if self.tty else PLAIN_LINE_S)):
            return
        self._stage, self._last = event.stage, now
        if self.tty:
            self._draw(event)
            return
        text = event.text()
        if event.stage == "indexing" and event.total:
            text += f" {bar(event.done, event.total)}"
        self.stream.write(text + "\n")
        self.stream.flush()

    def _draw(self, event: Progress) -> None:
        total = event.total if event.stage == "indexing" and event.total else None  # None: rich pulses
        if self._live is None or self._task is None:
            # Our own redraw pace (TTY_REDRAW_S) instead of rich's refresh thread: one thread fewer per file.
            self._live = rich.progress.Progress(
                rich.progress.TextColumn("{task.description}"), rich.progress.BarColumn(bar_width=20),
                rich.progress.TaskProgressColumn(),
                console=Console(file=self.stream, force_terminal=True, highlight=False),
                transient=True, auto_refresh=False)
            self._live.start()
            self._task = self._live.add_task(event.text(), total=total, completed=event.done)
        else:
            self._live.update(self._task, description=event.text(), total=total, completed=event.done)
        self._live.refresh()

    def clear(self) -> None:
        if self._live is not None:
            self._live.stop()  # transient: the bar is erased and the cursor shown again
            self._live, self._task = None, None


def bar(done: int, total: int, width: int = 20) -> str:
    filled = round(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + f"] {100 * done // max(total, 1)}%"


def parse_scopes(value: str) -> list[str]:
    """`--scope`: one scope, or several joined by commas (workspace,channel:C… is what that channel sees)."""
    scopes = [part.strip() for part in value.split(",") if part.strip()]
    if not scopes:
        raise ConfigError("--scope: give workspace, channel:C… or user:U… (several joined by commas).")
    try:
        return [validate_scope(scope) for scope in scopes]
    except KnowledgeError as exc:
        raise ConfigError(f"--scope: {exc.user_message()}") from None


def expand_paths(paths: Iterable[str]) -> Iterator[Path]:
    """Files as given; a directory stands for the files under it (hidden ones skipped), in name order."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(part.startswith(".") for part in child.relative_to(path).parts):
                    yield child
        else:
            yield path


def run_ingest(settings: Settings, paths: list[str], *, scope: str, stdout: IO[str] | None = None,
               stderr: IO[str] | None = None) -> int:
    """Ingest each file; one result line per file on stdout, errors on stderr. 1 if any file failed."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    scopes = parse_scopes(scope)
    if len(scopes) != 1:
        raise ConfigError("--scope: ingest puts documents in one scope (workspace, channel:C… or user:U…).")
    [scope] = scopes
    return asyncio.run(_ingest_all(settings, paths, scope=scope, stdout=stdout, stderr=stderr))


async def _ingest_all(settings: Settings, paths: list[str], *, scope: str, stdout: IO[str], stderr: IO[str]) -> int:
    store = await open_store(settings)
    embedder = make_embedder(settings)
    max_bytes = int(settings.max_file_mb * 1024 * 1024)
    failed = 0
    try:
        for path in expand_paths(paths):
            line = ProgressLine(stderr)
            try:
                result = await ingest_path(store, embedder, path, scope=scope, uploaded_by="cli",
                                           progress=line.update, max_bytes=max_bytes)
            except KnowledgeError as exc:
                failed += 1
                line.clear()
                print(f"threadbot: {path}: {exc.user_message()}", file=stderr, flush=True)
            except OSError as exc:
                failed += 1
                line.clear()
                print(f"threadbot: {path}: cannot read it ({exc.strerror or exc}).", file=stderr, flush=True)
            else:
                line.clear()
                print(result_line(path, result), file=stdout, flush=True)
            finally:
                line.clear()  # Ctrl-C mid-file: the terminal gets its cursor back
    finally:
        await store.close()
    return 1 if failed else 0


def result_line(path: Path, result: IngestResult) -> str:
    verb = "Replaced" if result.replaced else "Added"
    return (f"{verb} {path}: {result.chunks:,} chunk{'s' if result.chunks != 1 else ''} in {result.seconds:.1f} s "
            f"(document {result.document_id}, scope {result.scope})")


# What `threadbot search --json` prints per hit, in this key order.
HIT_JSON_FIELDS = ("document_id", "title", "section", "page", "text", "score", "chunk_id", "scope", "permalink")


def hit_json(hit: SearchHit) -> dict[str, Any]:
    return {name: getattr(hit, name) for name in HIT_JSON_FIELDS}


def run_search(settings: Settings, query: str, *, scope: str, k: int, as_json: bool,
               stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> int:
    """Print the ranked hits for one query, or (query "-") for each line of stdin with one model load."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    scopes = parse_scopes(scope)
    if k < 1:
        raise ConfigError("-k: ask for at least one result.")
    # Opening a missing path would create an empty database and find nothing, silently.
    if settings.database_url is None and not settings.db_path.exists():
        raise ConfigError(f"THREADBOT_DB: no database at {settings.db_path}. Point it at the bot's database file.")
    return asyncio.run(_search_all(settings, query, scopes=scopes, k=k, as_json=as_json, stdin=stdin, stdout=stdout))


async def _search_all(settings: Settings, query: str, *, scopes: list[str], k: int, as_json: bool,
                      stdin: IO[str], stdout: IO[str]) -> int:
    store = await open_store(settings)
    embedder = make_embedder(settings)
    try:
        queries = (line.rstrip("\r\n") for line in stdin) if query == "-" else iter([query])
        for number, text in enumerate(queries):
            hits = await search(store, embedder, text, scopes=scopes, k=k)
            if as_json:
                # One line per query (also for a blank one), so answers line up with the input.
                stdout.write(json.dumps([hit_json(h) for h in hits], ensure_ascii=False) + "\n")
            else:
                stdout.write(("\n" if number else "") + render_hits(text, hits) + "\n")
            stdout.flush()
    finally:
        await store.close()
    return 0


def render_hits(query: str, hits: list[SearchHit]) -> str:
    if not hits:
        return f"No results for {query!r}."
    lines = [f"{len(hits)} result{'s' if len(hits) != 1 else ''} for {query!r}:"]
    for rank, hit in enumerate(hits, start=1):
        where = f" — {hit.location}" if hit.location else ""
        lines.append(f"{rank:>2}. {hit.score:.4f}  {hit.title}{where}  (document {hit.document_id}, {hit.scope})")
        lines.append(f"    {hit.snippet(160)}")
    return "\n".join(lines)
