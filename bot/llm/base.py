"""The provider interface: one streaming call in, project StreamEvents out."""
from __future__ import annotations

from typing import AsyncIterator, Protocol

from bot.messages import ModelRequest, StreamEvent


class Provider(Protocol):
    """A model provider. `stream` yields TextDelta/ToolUseStarted events and ends with MessageDone.

    Failures raise bot.errors.ModelError subclasses (ModelOverloaded, ModelRateLimited,
    ModelUnavailable, ModelRejected, PromptTooLong) carrying any usage already spent. Providers
    retry transient errors themselves, with every wait bounded (never minutes).
    """

    name: str

    def stream(self, request: ModelRequest) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...
