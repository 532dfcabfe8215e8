"""The 👍/👎 feedback buttons under every finished answer (the feedback listener records the clicks)."""
from __future__ import annotations

from typing import Any

FEEDBACK_ACTION_ID = "answer_feedback"
FEEDBACK_BLOCK_ID = "answer_feedback"


def feedback_blocks(model: str) -> list[dict[str, Any]]:
    """Slack's own feedback buttons (context_actions / feedback_buttons) for the last part of an answer.

    Each button's value carries the vote and the model that wrote the answer, so a click can be
    recorded without looking anything up.
    """
    def button(emoji: str, label: str, vote: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": emoji}, "accessibility_label": label,
                "value": f"{vote} {model}"[:2000]}

    return [{
        "type": "context_actions",
        "block_id": FEEDBACK_BLOCK_ID,
        "elements": [{
            "type": "feedback_buttons",
            "action_id": FEEDBACK_ACTION_ID,
            "positive_button": button("👍", "Good answer", "up"),
            "negative_button": button("👎", "Bad answer", "down"),
        }],
    }]
