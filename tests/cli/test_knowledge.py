"""`threadbot ingest` and `threadbot search`: the real command as a subprocess, and its edges in-process."""
from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import load_settings
from bot.cli.knowledge import ProgressLine, run_search
from knowledge.ingest import Progress
from tests.botproc import THREADBOT
from tests.knowledge_files import make_pdf

pytestmark = pytest.mark.timeout(180)

HOLIDAYS = "# Holidays\n\nEveryone gets twenty-five days of paid holiday per year.\n"


def threadbot(*args: str, db: Path, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(THREADBOT), *args], env={"PATH": "", "HOME": str(cwd), "THREADBOT_DB": str(db)},
                          cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120)


def test_ingest_then_search_and_batch_search_as_the_real_command(tmp_path):
    db = tmp_path / "kb.db"
    (tmp_path / "holidays.md").write_text(HOLIDAYS, encoding="utf-8")
    (tmp_path / "expenses.pdf").write_bytes(make_pdf(["Expenses", "Submit receipts within thirty days."]))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a PDF")

    done = threadbot("ingest", "holidays.md", "broken.pdf", "expenses.pdf", db=db, cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # one file failed, the others were still added
    added = done.stdout.splitlines()
    assert len(added) == 2, done.stdout
    assert re.fullmatch(r"Added holidays\.md: 1 chunk in \d+\.\d s \(document 1, scope workspace\)", added[0])
    assert re.fullmatch(r"Added expenses\.pdf: \d+ chunks? in \d+\.\d s \(document 2, scope workspace\)", added[1])
    errors = [line for line in done.stderr.splitlines() if line.startswith("threadbot: ")]
    assert errors == ["threadbot: broken.pdf: broken.pdf looks damaged, so I couldn't read it (PdfStreamError)."]
    # Not a terminal: progress comes as plain lines, one per stage at least.
    assert "Reading holidays.md…" in done.stderr and "Indexing expenses.pdf: 0/" in done.stderr
    assert "\r" not in done.stderr

    found = threadbot("search", "how many paid holiday days", "--json", "-k", "1", db=db, cwd=tmp_path)
    assert found.returncode == 0, found.stderr
    [hit] = json.loads(found.stdout)
    assert {k: hit[k] for k in ("document_id", "title", "section", "text", "scope")} == {
        "document_id": 1, "title": "holidays.md", "section": "Holidays",
        "text": "# Holidays\n\nEveryone gets twenty-five days of paid holiday per year.", "scope": "workspace"}
    assert isinstance(hit["score"], float) and hit["score"] > 0

    batch = threadbot("search", "-", "--json", "-k", "2", db=db, cwd=tmp_path,
                      stdin="paid holiday\n\nreceipts deadline\n")
    assert batch.returncode == 0, batch.stderr
    lines = batch.stdout.splitlines()
    assert len(lines) == 3  # one array per input line, a blank query included, so answers line up
    first, blank, third = (json.loads(line) for line in lines)
    assert first[0]["title"] == "holidays.md" and blank == [] and third[0]["title"] == "expenses.pdf"
    assert third[0]["page"] == 2 and "thirty days" in third[0]["text"]

    # Another scope sees nothing of the workspace documents unless asked for both.
    scoped = threadbot("search", "paid holiday", "--json", "--scope", "channel:C0OTHER", db=db, cwd=tmp_path)
    assert scoped.returncode == 0 and json.loads(scoped.stdout) == []


def test_edges_in_process(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("THREADBOT_DB", str(tmp_path / "kb.db"))
    assert main(["search", "anything"]) == 2
    assert "THREADBOT_DB: no database at" in capsys.readouterr().err
    assert main(["ingest", "x.md", "--scope", "team"]) == 2
    assert "--scope: 'team' is not a scope" in capsys.readouterr().err
    assert main(["ingest", "x.md", "--scope", "workspace,channel:C1"]) == 2
    assert "ingest puts documents in one scope" in capsys.readouterr().err

    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "holidays.md").write_text(HOLIDAYS, encoding="utf-8")
    (docs / ".hidden.md").write_text("# Hidden\n\nnot for the index\n", encoding="utf-8")
    assert main(["ingest", str(docs), "--scope", "channel:C0GENERAL"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Added {docs / 'sub' / 'holidays.md'}: 1 chunk in ") and out.count("\n") == 1
    assert main(["ingest", str(docs / "sub" / "holidays.md"), "--scope", "channel:C0GENERAL"]) == 0
    assert capsys.readouterr().out.startswith("Replaced ")

    assert main(["search", "paid holiday"]) == 0
    assert capsys.readouterr().out == "No results for 'paid holiday'.\n"  # default scope: workspace only
    assert main(["search", "paid holiday", "--scope", "workspace,channel:C0GENERAL", "-k", "0"]) == 2
    assert "-k: ask for at least one result" in capsys.readouterr().err
    assert main(["search", "paid holiday", "--scope", "workspace,channel:C0GENERAL"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0] == "1 result for 'paid holiday':"
    assert re.match(r" 1\. \d\.\d{4}  holidays\.md — Holidays  \(document 2, channel:C0GENERAL\)$", text[1])
    assert "twenty-five days" in text[2]

    # Batch input with Windows line ends: the query is the line without them.
    settings = load_settings()
    out = io.StringIO()
    assert run_search(settings, "-", scope="channel:C0GENERAL", k=1, as_json=True,
                      stdin=io.StringIO("holiday\r\n"), stdout=out) == 0
    assert json.loads(out.getvalue())[0]["document_id"] == 2


def test_progress_line_redraws_on_a_terminal_and_prints_lines_otherwise():
    tty = io.StringIO()
    line = ProgressLine(tty, tty=True)
    line.update(Progress("reading", "a.md"))
    line.update(Progress("indexing", "a.md", 0, 4))
    line.update(Progress("done", "a.md", 4, 4, 1.0))
    line.clear()
    drawn = re.sub(r"\x1b\[[0-9;]*m", "", tty.getvalue())  # colours aside
    # rich draws in place (carriage return + erase line, never a newline between redraws), stage by stage, with
    # the bar and percentage once the total is known; transient: the line is erased and the cursor shown at the end.
    assert drawn.startswith("\x1b[?25l\r\x1b[2KReading a.md…"), repr(drawn)
    assert re.search(r"\r\x1b\[2KIndexing a\.md: 0/4 chunks… ━{20} +0%", drawn), repr(drawn)
    assert drawn.index("Reading a.md…") < drawn.index("Indexing a.md")
    assert "Added a.md" not in drawn  # "done" is the result line's job, on stdout
    assert drawn.count("\n") == 1 and drawn.endswith("\n\x1b[?25h\r\x1b[1A\x1b[2K"), repr(drawn)
    plain = io.StringIO()
    line = ProgressLine(plain, tty=False)
    line.update(Progress("reading", "a.md"))
    line.update(Progress("indexing", "a.md", 0, 4))
    line.update(Progress("indexing", "a.md", 2, 4))  # within the interval: skipped
    line.clear()
    assert plain.getvalue() == "Reading a.md…\nIndexing a.md: 0/4 chunks… [....................] 0%\n"


def test_ingest_and_search_on_postgresql_need_no_sqlite_file(tmp_path, monkeypatch, capsys, pg_url):
    monkeypatch.setenv("THREADBOT_DATABASE_URL", pg_url)
    monkeypatch.setenv("THREADBOT_DB", str(tmp_path / "missing.db"))  # replicas have no SQLite file
    (tmp_path / "holidays.md").write_text(HOLIDAYS, encoding="utf-8")
    assert main(["ingest", str(tmp_path / "holidays.md")]) == 0
    assert "(document 1, scope workspace)" in capsys.readouterr().out
    assert main(["search", "paid holiday", "--json"]) == 0
    [hit] = json.loads(capsys.readouterr().out)
    assert (hit["title"], hit["scope"]) == ("holidays.md", "workspace") and "twenty-five days" in hit["text"]
    assert not (tmp_path / "missing.db").exists()
