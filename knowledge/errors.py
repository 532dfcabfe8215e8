"""Knowledge-base failures; each carries the sentence the uploader or searcher sees."""
from __future__ import annotations

from bot.errors import ThreadbotError


class KnowledgeError(ThreadbotError):
    """I couldn't add that file to the knowledge base."""

    def __init__(self, detail: str = ""):
        super().__init__(detail or self.__doc__)
        self.detail = detail

    def user_message(self) -> str:
        return self.detail or self.__doc__ or "I couldn't add that file to the knowledge base."


class UnsupportedFileType(KnowledgeError):
    """I can't read this kind of file. I can read text, Markdown, CSV, JSON, HTML, PDF, Word (.docx) and source code."""


class FileTooLarge(KnowledgeError):
    """That file is larger than the knowledge base accepts."""


class WrongContent(KnowledgeError):
    """The file's contents don't match its type (for example a web page saved as .pdf)."""


class EncryptedPdf(KnowledgeError):
    """That PDF is password-protected. Please share an unprotected copy."""


class MalformedFile(KnowledgeError):
    """That file looks damaged, so I couldn't read it."""


class SuspiciousArchive(KnowledgeError):
    """That document expands to far more data than its size suggests, so I didn't open it."""


class EmptyDocument(KnowledgeError):
    """I couldn't find any text in that file (a scanned PDF has only images, for example)."""


class DocumentNotFound(KnowledgeError):
    """There is no such document in the knowledge base."""


class EmbedderUnavailable(KnowledgeError):
    """The embedding model couldn't be loaded or reached."""
