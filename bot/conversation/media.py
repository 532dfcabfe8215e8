"""What a turn carries besides text: images prepared for the model and kept in the store by content address,
and documents shared with a question, given whole when they fit."""
from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Sequence

from bot.conversation.context_window import input_budget
from bot.errors import ImageUnreadable
from bot.llm.images import prepare_image_async
from bot.llm.tokens import count_text_tokens
from bot.messages import DocumentBlock, ImageBlock, Message

# Names and types people share images under; HEIC/SVG/TIFF are here too, so they get a clear sentence
# instead of going to the knowledge base.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".heic", ".heif", ".svg", ".tif", ".tiff", ".bmp")


@dataclass(frozen=True)
class Attachment:
    """An image shared with a turn, already fetched by its surface (Slack download, console file)."""

    name: str
    mimetype: str | None
    data: bytes


def is_image(name: str, mimetype: str | None) -> bool:
    return (mimetype or "").lower().startswith("image/") or PurePath(name).suffix.lower() in IMAGE_SUFFIXES


def _names(attachments: Sequence[Attachment]) -> str:
    names = [a.name for a in attachments]
    if len(names) <= 3:
        return ", ".join(names)
    return f"{', '.join(names[:3])} and {len(names) - 3} more"


async def image_blocks(attachments: Sequence[Attachment], *, store, max_images: int) -> tuple[list[ImageBlock], list[str]]:
    """The turn's images as blocks (bytes attached, stored by sha256) and one sentence per image left out."""
    notes: list[str] = []
    kept = list(attachments[:max_images])
    if len(attachments) > max_images:
        notes.append(f"I look at {max_images} images per message, so I left out {_names(attachments[max_images:])}.")
    results = await asyncio.gather(*(prepare_image_async(a.data, a.name) for a in kept), return_exceptions=True)
    blocks: list[ImageBlock] = []
    for result in results:
        if isinstance(result, ImageUnreadable):
            notes.append(result.user_message())
            continue
        if isinstance(result, BaseException):
            raise result
        await store.put_blob(result.sha256, result.media_type, result.data)
        if result.note:
            notes.append(result.note)
        blocks.append(ImageBlock(name=result.name, media_type=result.media_type, sha256=result.sha256,
                                 width=result.width, height=result.height, data=result.data))
    return blocks, notes


async def with_image_data(messages: list[Message], store) -> list[Message]:
    """History as the request needs it: every stored image gets its bytes back from the store."""
    wanted = {b.sha256 for m in messages for b in m.images if b.data is None}
    if not wanted:
        return messages
    blobs = await store.get_blobs(sorted(wanted))
    return [m.map_images(lambda b: replace(b, data=blobs.get(b.sha256)) if b.data is None else b)
            for m in messages]


def without_images(message: Message) -> Message:
    """The message with each image as its `[image: name]` text (a model without vision, or no room left)."""
    return message.map_images(ImageBlock.as_text)


# --- documents shared with a question --------------------------------------------------------------

# A document given whole may take at most this share of the input budget; the rest stays for the thread.
WHOLE_DOCUMENT_SHARE = 0.5
# Claude reads a PDF as page images plus text: Anthropic counts 1,500-3,000 tokens per page.
PDF_TOKENS_PER_PAGE = 1500


def _read_whole(file: Attachment) -> tuple[str, str, int]:
    """(kind, parsed text, PDF pages) of a document; raises the knowledge base's own errors."""
    from knowledge.parse import detect_kind, parse_bytes

    kind = detect_kind(file.name, file.mimetype, file.data[:4096])
    text = "\n\n".join(block.text for block in parse_bytes(kind, file.data, filename=file.name))
    pages = 0
    if kind == "pdf":
        from pypdf import PdfReader

        pages = len(PdfReader(io.BytesIO(file.data)).pages)
    return kind, text, pages


async def document_blocks(files: Sequence[Attachment], *, model: str, max_tokens: int
                          ) -> tuple[list[DocumentBlock], list[str]]:
    """Documents shared with a question, whole, while they fit half the input budget: Claude gets a PDF
    itself, every other case the parsed text. Too long: a sentence, and the knowledge base answers instead."""
    budget = int(input_budget(model=model, max_tokens=max_tokens) * WHOLE_DOCUMENT_SHARE)
    blocks: list[DocumentBlock] = []
    notes: list[str] = []
    for file in files:
        try:
            kind, text, pages = await asyncio.to_thread(_read_whole, file)
        except Exception:  # noqa: BLE001 — the upload's own message already says why it can't be read
            continue
        tokens = count_text_tokens(text, model=model) + pages * PDF_TOKENS_PER_PAGE
        if not text.strip() or tokens > budget:
            if text.strip():
                notes.append(f"{file.name} is too long to read whole, so I answered from its most relevant parts.")
            continue
        budget -= tokens
        pdf = kind == "pdf"
        blocks.append(DocumentBlock(name=file.name, media_type="application/pdf" if pdf else "text/plain",
                                    sha256=hashlib.sha256(file.data).hexdigest(), text=text,
                                    data=file.data if pdf else None))
    return blocks, notes
