"""Parsers, file type detection and chunking for the knowledge base."""
from __future__ import annotations

import json

import pytest

from knowledge.chunk import CHUNK_TOKENS, chunk_blocks, embedding_text
from knowledge.embed import LOCAL_WINDOW, wordpiece_tokenizer
from knowledge.errors import (
    EncryptedPdf,
    MalformedFile,
    SuspiciousArchive,
    UnsupportedFileType,
    WrongContent,
)
from knowledge.parse import Block, detect_kind, parse_bytes
from tests.knowledge_files import make_docx, make_docx_bomb, make_encrypted_pdf, make_pdf


def blocks(kind: str, data: bytes, filename: str = "") -> list[Block]:
    return list(parse_bytes(kind, data, filename=filename))


def test_plain_text_paragraphs() -> None:
    got = blocks("text", "First paragraph.\n\nSecond — with ünïcode.\n".encode())
    assert [b.text for b in got] == ["First paragraph.\n\nSecond — with ünïcode."]
    assert got[0].section is None and got[0].page is None


def test_markdown_sections_follow_heading_levels_and_ignore_code_fences() -> None:
    md = (
        "# Guide\nintro\n## Install\nrun pip\n```\n# not a heading\n```\n### Linux\napt\n## Use\nimport it\n"
    ).encode()
    got = blocks("markdown", md)
    assert [(b.section, b.text.splitlines()[0]) for b in got] == [
        ("Guide", "# Guide"),
        ("Guide > Install", "## Install"),
        ("Guide > Install > Linux", "### Linux"),
        ("Guide > Use", "## Use"),
    ]
    assert "# not a heading" in got[1].text


def test_csv_rows_keep_their_header_names() -> None:
    rows = "name,team,email\n" + "".join(f"person{i},core,p{i}@example.com\n" for i in range(30))
    got = blocks("csv", rows.encode(), "people.csv")
    assert [b.section for b in got] == ["rows 1–25", "rows 26–30"]
    assert got[0].text.splitlines()[0] == "name: person0; team: core; email: p0@example.com"


def test_json_flattens_paths_per_top_level_key() -> None:
    data = json.dumps({"service": {"name": "billing", "owners": ["ana", "bo"]}, "tier": 1}).encode()
    got = blocks("json", data)
    assert [(b.section, b.text) for b in got] == [
        ("service", "service.name: billing\nservice.owners[0]: ana\nservice.owners[1]: bo"),
        ("tier", "tier: 1"),
    ]


def test_json_invalid_is_malformed() -> None:
    with pytest.raises(MalformedFile):
        blocks("json", b'{"a": ', "x.json")


def test_html_visible_text_by_heading_without_scripts() -> None:
    html = b"""<html><head><title>T</title><style>p{}</style></head><body>
    <h1>Onboarding</h1><p>Welcome &amp; hello.</p><script>alert('x')</script>
    <h2>Laptop</h2><ul><li>Pick up at IT</li><li>Enable disk encryption</li></ul></body></html>"""
    got = blocks("html", html)
    assert [b.section for b in got] == ["Onboarding", "Onboarding > Laptop"]
    assert got[0].text == "Onboarding\nWelcome & hello."
    assert got[1].text == "Laptop\nPick up at IT\nEnable disk encryption"
    assert all("alert" not in b.text and "p{}" not in b.text for b in got)


def test_pdf_blocks_carry_page_numbers() -> None:
    got = blocks("pdf", make_pdf(["Intro page", "Expense policy details", "Appendix"]))
    assert [(b.page, b.text) for b in got] == [(1, "Intro page"), (2, "Expense policy details"), (3, "Appendix")]


def test_encrypted_pdf_is_refused_with_a_clear_message() -> None:
    with pytest.raises(EncryptedPdf) as info:
        blocks("pdf", make_encrypted_pdf(["secret stuff"]), "board.pdf")
    assert "board.pdf is password-protected" in info.value.user_message()


@pytest.mark.parametrize("data", [b"%PDF-1.4\n garbage", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"])
def test_malformed_pdf_is_refused(data: bytes) -> None:
    with pytest.raises(MalformedFile) as info:
        blocks("pdf", data, "broken.pdf")
    assert info.value.user_message().startswith("broken.pdf looks damaged")


def test_docx_sections_from_heading_styles_and_tables() -> None:
    got = blocks("docx", make_docx(), "handbook.docx")
    assert [b.section for b in got] == ["Employee Handbook", "Holidays", "Holidays > Carry-over"]
    assert "twenty-five days" in got[1].text
    assert got[2].text.endswith("Region | Days\nEU | 25")


def test_docx_zip_bomb_is_refused_before_opening() -> None:
    with pytest.raises(SuspiciousArchive) as info:
        blocks("docx", make_docx_bomb(), "bomb.docx")
    assert "expands to 40 MB" in info.value.user_message()


def test_code_sections_are_top_level_definitions() -> None:
    code = b"import os\n\ndef load(path):\n    return 1\n\nclass Store:\n    def get(self):\n        pass\n"
    got = blocks("code", code, "x.py")
    assert [b.section for b in got] == [None, "def load", "class Store"]


@pytest.mark.parametrize(
    "filename, mimetype, head, kind",
    [
        ("a.txt", None, b"hello", "text"),
        ("README.md", "text/plain", b"# x", "markdown"),
        ("data.csv", None, b"a,b", "csv"),
        ("x.json", None, b"{}", "json"),
        ("page.html", None, b"<html>", "html"),
        ("report.pdf", "application/pdf", b"%PDF-1.7", "pdf"),
        ("scan", "application/pdf", b"%PDF-1.7", "pdf"),
        ("h.docx", None, b"PK\x03\x04rest", "docx"),
        ("main.go", None, b"package main", "code"),
        ("notes", "text/plain", b"plain words", "text"),
    ],
)
def test_detect_kind(filename: str, mimetype: str | None, head: bytes, kind: str) -> None:
    assert detect_kind(filename, mimetype, head) == kind


def test_detect_login_page_where_a_pdf_was_expected() -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><form>password</form></body></html>"
    with pytest.raises(WrongContent) as info:
        detect_kind("report.pdf", "application/pdf", page)
    assert "web page" in info.value.user_message()


@pytest.mark.parametrize(
    "filename, mimetype, head",
    [("photo.png", "image/png", b"\x89PNG\r\n"), ("tool.exe", None, b"MZ\x90\x00"), ("x.txt", None, b"a\x00b\x00")],
)
def test_unsupported_types(filename: str, mimetype: str | None, head: bytes) -> None:
    with pytest.raises(UnsupportedFileType) as info:
        detect_kind(filename, mimetype, head)
    assert filename in info.value.user_message()


def test_chunks_fit_the_embedder_window_with_overlap_and_keep_sections() -> None:
    words = " ".join(f"token{i} alpha beta gamma" for i in range(400))
    source = [Block(text="short intro", section="Intro"), Block(text=words, section="Body", page=None)]
    chunks = list(chunk_blocks(source))
    tokenizer = wordpiece_tokenizer()
    assert chunks[0].section == "Intro" and chunks[0].text == "short intro"
    body = chunks[1:]
    assert len(body) > 5 and all(c.section == "Body" for c in body)
    for chunk in body:
        pieces = len(tokenizer.encode(chunk.text, add_special_tokens=False).ids)
        assert pieces <= CHUNK_TOKENS
        full = len(tokenizer.encode(embedding_text(chunk.text, title="report.txt", section="Body")).ids)
        assert full <= LOCAL_WINDOW  # title/section prefix + [CLS]/[SEP] still fit what the model reads
    # Neighbours overlap: the start of each window repeats the end of the previous one.
    for left, right in zip(body, body[1:]):
        assert right.text.split()[0] in left.text.split()[-40:]
    # Every word of the source is in some chunk.
    covered = set(" ".join(c.text for c in body).split())
    assert covered == set(words.split())


def test_chunks_never_cross_pages() -> None:
    chunks = list(chunk_blocks([Block(text="one", page=1), Block(text="two", page=2)]))
    assert [(c.text, c.page) for c in chunks] == [("one", 1), ("two", 2)]
