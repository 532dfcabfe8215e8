"""What a person may do with the documents in the knowledge base: list, find, delete, share.

The rules live here and answer with data (documents, or a KnowledgeError saying which rule said
no); each surface (/knowledge in Slack, the console, the CLI) only renders the answer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.store import KnowledgeDocument
from knowledge.errors import DocumentNotFound, KnowledgeError
from knowledge.scopes import WORKSPACE, scopes_for, validate_scope

if TYPE_CHECKING:
    from bot.store import Store


class NotYours(KnowledgeError):
    """Only the person who shared a document or an admin can delete it."""

    def __init__(self, document: KnowledgeDocument):
        super().__init__()
        self.document = document


class AdminsOnly(KnowledgeError):
    """Only admins can make a document visible to the whole workspace."""


@dataclass(frozen=True)
class Caller:
    """Who asks, from where. `operator` is the console's and CLI's user: the database is theirs."""

    user_id: str
    channel_id: str | None
    is_admin: bool = False
    operator: bool = False

    @property
    def visible(self) -> list[str]:
        return scopes_for(user_id=self.user_id, channel_id=self.channel_id)


# The console's and CLI's caller: whoever runs them owns the database.
OPERATOR = Caller(user_id="operator", channel_id=None, operator=True)


@dataclass(frozen=True)
class Shared:
    document: KnowledgeDocument
    already: bool  # it was workspace-wide before


async def list_documents(store: "Store", scopes: list[str] | None) -> list[KnowledgeDocument]:
    """Documents visible in these scopes (None: all, for admins and the operator), newest first."""
    return await store.knowledge_documents(scopes)


async def visible_documents(store: "Store", caller: Caller, *, everything: bool = False) -> list[KnowledgeDocument]:
    """What the caller sees here; `everything` (admins and the operator only) lists every document."""
    return await list_documents(store, None if everything and (caller.is_admin or caller.operator) else caller.visible)


async def find_document(store: "Store", document_id: int, caller: Caller = OPERATOR) -> KnowledgeDocument:
    """A document the caller may act on. Someone else's document in a scope the caller can't read is
    reported as absent, so ids don't reveal what others shared privately."""
    document = await store.knowledge_document(document_id)
    if document is None or not (caller.operator or caller.is_admin or document.uploaded_by == caller.user_id
                                or document.scope in caller.visible):
        raise DocumentNotFound(f"There is no document {document_id} in the knowledge base.")
    return document


async def delete_document(store: "Store", document_id: int, caller: Caller = OPERATOR) -> KnowledgeDocument:
    """Remove a document from every index: its uploader, an admin or the operator may."""
    document = await find_document(store, document_id, caller)
    if not (caller.operator or caller.is_admin or document.uploaded_by == caller.user_id):
        raise NotYours(document)
    if not await store.knowledge_delete_document(document_id):
        raise DocumentNotFound(f"There is no document {document_id} in the knowledge base.")
    return document


async def share_document(store: "Store", document_id: int, caller: Caller = OPERATOR) -> Shared:
    """Make a document visible in the whole workspace (admins and the operator)."""
    document = await find_document(store, document_id, caller)
    if not (caller.is_admin or caller.operator):
        raise AdminsOnly()
    if document.scope == WORKSPACE:
        return Shared(document, already=True)
    return Shared(await set_scope(store, document_id, WORKSPACE), already=False)


async def set_scope(store: "Store", document_id: int, scope: str) -> KnowledgeDocument:
    """Move a document to another scope (admins make one workspace-wide with scope="workspace")."""
    validate_scope(scope)
    if not await store.knowledge_set_scope(document_id, scope):
        raise DocumentNotFound(f"There is no document {document_id} in the knowledge base.")
    document = await store.knowledge_document(document_id)
    if document is None:  # deleted in between
        raise DocumentNotFound(f"There is no document {document_id} in the knowledge base.")
    return document
