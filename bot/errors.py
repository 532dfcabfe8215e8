"""The project's own exception types; only these stop a turn. Each docstring is the user-facing text."""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime

from bot.messages import Usage


def reference_id() -> str:
    """A short id the user sees next to a failure and the log line carries with the details."""
    return secrets.token_hex(4)


@dataclass(frozen=True)
class Failure:
    """What a surface shows when something failed: one human sentence and the reference id that is in the log.

    Data, not a rendered string: Slack, the console and the CLI each render it their own way.
    """

    message: str
    ref: str

    @classmethod
    def new(cls, message: str) -> "Failure":
        return cls(message, reference_id())


class ThreadbotError(Exception):
    """Something went wrong on my side."""

    def user_message(self) -> str:
        return self.__doc__ or "Something went wrong."


class ConfigError(ThreadbotError):
    """A setting is missing or malformed."""


class ModelError(ThreadbotError):
    """The model failed to answer."""

    def __init__(self, detail: str = "", *, usage: Usage | None = None, status_code: int | None = None):
        super().__init__(detail or self.__doc__)
        # Tokens the failed call had already spent, when the provider told us (invariant 4).
        self.usage = usage
        self.status_code = status_code


class ModelOverloaded(ModelError):
    """The model is overloaded right now. Please try again in a minute."""


class ModelRateLimited(ModelError):
    """The model provider is rate limiting us right now. Please try again in a minute."""


class ModelUnavailable(ModelError):
    """I couldn't reach the model. Please try again shortly."""


class ModelRejected(ModelError):
    """The model rejected this request."""


class ImagesNotSupported(ModelRejected):
    """This model can't read images, so I answered from the text alone."""


class PromptTooLong(ModelError):
    """This conversation is too long for the model, even after trimming older messages. Please start a new thread."""


class MessageTooLarge(ThreadbotError):
    """That message is too long for me to process. Please shorten it or share it as a file."""


class Interrupted(ThreadbotError):
    """This answer was interrupted before it finished (I may have been restarted). Please ask again."""


class ToolRoundLimit(ThreadbotError):
    """I reached my limit of steps for one question, so this answer may be incomplete."""


class ImageUnreadable(ThreadbotError):
    """I couldn't read that image."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message  # one sentence naming the file and what to do

    def user_message(self) -> str:
        return self.message


class LimitExceeded(ThreadbotError):
    """You've reached a usage limit."""

    def __init__(self, message: str, *, resets_at: datetime):
        super().__init__(message)
        self.message = message
        self.resets_at = resets_at

    def user_message(self) -> str:
        return self.message


def failure_for(exc: BaseException, *, log: logging.Logger, doing: str, generic: str, lead: str = "") -> Failure:
    """The Failure to show for `exc`, logged once under the same reference id (invariant 5).

    One of our own errors says its own sentence (after `lead`, e.g. "I couldn't add report.pdf.") and
    is logged without a traceback; anything else is a bug: the user reads `generic`, the log has the
    traceback. `doing` names the work in the log line: "<doing> failed ref=<ref>".
    """
    if isinstance(exc, ThreadbotError):
        failure = Failure.new(f"{lead} {exc.user_message()}".strip())
        log.warning("%s failed ref=%s: %s: %s", doing, failure.ref, type(exc).__name__, exc)
    else:
        failure = Failure.new(generic)
        log.error("%s failed ref=%s", doing, failure.ref, exc_info=exc)
    return failure
