"""Approval before a tool acts (invariant 10): the question a surface asks, and the answers the model reads."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

VALUE_CHARS = 200
TOTAL_CHARS = 1500


@dataclass(frozen=True)
class ApprovalRequest:
    """One tool call waiting for the asking user's yes."""

    tool_use_id: str
    tool: str
    arguments: dict[str, Any]
    user_id: str  # only this user decides

    def readable_arguments(self) -> list[tuple[str, str]]:
        """(name, value) pairs for people: one line each, long values shortened, the whole bounded."""
        pairs: list[tuple[str, str]] = []
        used = 0
        for key, value in self.arguments.items():
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
            text = " ".join(text.split())
            if len(text) > VALUE_CHARS:
                text = text[: VALUE_CHARS - 1] + f"… ({len(text):,} characters)"
            used += len(key) + len(text)
            if used > TOTAL_CHARS:
                pairs.append(("…", f"{len(self.arguments) - len(pairs)} more arguments not shown"))
                break
            pairs.append((str(key), text))
        return pairs


# How a surface asks: True = approved; False = denied or no answer in time.
Approve = Callable[[ApprovalRequest], Awaitable[bool]]


def declined(tool: str) -> str:
    return (f"The user declined this call, so {tool} did not run. Carry on without it: answer with what you "
            "have, or ask the user what to do instead.")


def cannot_ask(tool: str) -> str:
    return f"{tool} changes things and needs the user's approval, which cannot be asked here, so it did not run."
