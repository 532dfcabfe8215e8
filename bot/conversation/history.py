"""Keeping stored history a valid request: roles alternate, every tool_use has its tool_result."""
from __future__ import annotations

from bot.messages import Message, TextBlock, ToolResultBlock, ToolUseBlock

INTERRUPTED = "Not run: the turn was interrupted before this tool finished."


def repair(messages: list[Message]) -> list[Message]:
    """Return a valid request built from `messages`, which a crash or an old bug may have left invalid.

    - leading assistant messages are dropped (a request starts with the user);
    - consecutive messages of the same role are merged (a user message after an unanswered one);
    - a tool_use without a tool_result in the next message gets an error result;
    - a tool_result whose tool_use is not in the message before it is dropped.
    """
    merged: list[Message] = []
    for message in messages:
        if not merged and message.role != "user":
            continue
        if merged and merged[-1].role == message.role:
            merged[-1] = Message(message.role, [*merged[-1].content, *message.content])
        else:
            merged.append(Message(message.role, list(message.content)))

    fixed: list[Message] = []
    for message in merged:
        if message.role == "user":
            asked = {b.id for b in fixed[-1].tool_uses} if fixed else set()
            results = [b for b in message.content if isinstance(b, ToolResultBlock) and b.tool_use_id in asked]
            others = [b for b in message.content if not isinstance(b, (ToolResultBlock, ToolUseBlock))]
            answered = {r.tool_use_id for r in results}
            missing = [ToolResultBlock(i, INTERRUPTED, True) for i in _ordered_ids(fixed) if i in asked - answered]
            content = [*results, *missing, *others]  # tool results must come first in a user message
            if not content:
                content = [TextBlock("(empty message)")]
            fixed.append(Message("user", content))
        else:
            fixed.append(message)
    if fixed and fixed[-1].tool_uses:
        fixed.append(Message("user", [ToolResultBlock(u.id, INTERRUPTED, True) for u in fixed[-1].tool_uses]))
    return fixed


def _ordered_ids(fixed: list[Message]) -> list[str]:
    return [u.id for u in fixed[-1].tool_uses] if fixed else []


def is_valid(messages: list[Message]) -> bool:
    """True when `messages` is a request the Messages API accepts (shape only)."""
    if not messages or messages[0].role != "user":
        return False
    for before, after in zip(messages, messages[1:]):
        if before.role == after.role:
            return False
        asked = {u.id for u in before.tool_uses}
        answered = {b.tool_use_id for b in after.content if isinstance(b, ToolResultBlock)}
        if asked != answered and before.role == "assistant":
            return False
    return not messages[-1].tool_uses and all(m.content for m in messages)
