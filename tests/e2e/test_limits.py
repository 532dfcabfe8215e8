"""End to end: per-user limits and /usage in the real `threadbot run` process, driven through the fakes."""
from __future__ import annotations

import asyncio
import re

import pytest

from bot.slack.listeners.usage import HOLDING_LINE
from tests.botproc import BotProcess
from tests.fakes import slack as fs
from tests.fakes.anthropic import Reply
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.timeout(180)

ADMIN = "U0ADMIN"
LIMIT_MESSAGE = re.compile(r"^You've reached your limit of 2 requests per minute — try again in (\d+) seconds?\.$")


async def test_rpm_limit_refuses_without_a_model_call_and_usage_reports_exact_tokens(fakes, tmp_path):
    slack, model = fakes
    bot = BotProcess(slack_api_url=slack.api_url, anthropic_url=model.base_url, db_path=tmp_path / "bot.db",
                     socket_mode=False, log_path=tmp_path / "bot.log",
                     extra_env={"THREADBOT_USER_RPM": "2", "THREADBOT_ADMINS": ADMIN})
    model.add(
        Reply.text("Answer one.", input_tokens=1_200, output_tokens=34, cache_creation_input_tokens=500,
                   cache_read_input_tokens=7_000),
        Reply.text("Answer two.", input_tokens=800, output_tokens=66, cache_read_input_tokens=3_000),
    )
    bot.start()
    try:
        mentions = [fs.app_mention(f"question {n}") for n in range(3)]
        results = await asyncio.gather(*(slack.deliver_http(bot.events_url, fs.event_callback(m)) for m in mentions))
        assert all(r.status == 200 and r.elapsed < 3.0 for r in results), results

        def final_texts() -> list[str] | None:
            texts = []
            for mention in mentions:
                mine = [m.text for m in slack.messages_in_thread(fs.CHANNEL_ID, mention["ts"])
                        if m.user == fs.BOT_USER_ID and "Thinking" not in m.text]
                if not mine:
                    return None
                texts += mine
            return texts

        texts = await slack.wait_for(final_texts, timeout=60, what=lambda: f"three replies; log:\n{bot.log()}")
        await asyncio.sleep(0.5)  # a stray third model call would show up by now
        assert sorted(t for t in texts if t.startswith("Answer")) == ["Answer one.", "Answer two."]
        refused = [t for t in texts if not t.startswith("Answer")]
        assert len(refused) == 1 and (match := LIMIT_MESSAGE.match(refused[0])), texts
        assert 1 <= int(match.group(1)) <= 60
        assert len(model.requests) == 2

        # /usage as a slash command: the ephemeral ack carries the report with exact token counts.
        # Sonnet 4.6: 2,000 x $3 + 100 x $15 + 500 x $3.75 + 10,000 x $0.30 per million = $0.012375.
        today = "• *Today*: 2 calls, $0.0124 — 2,000 input · 100 output · 500 cache write · 10,000 cache read"
        own = await command(slack, bot, "")
        assert own["response_type"] == "ephemeral"
        assert own["text"].splitlines()[:2] == ["*Your usage*", today]

        refused_team = await command(slack, bot, "team")
        assert "Only threadbot admins" in refused_team["text"] and "2,000" not in refused_team["text"]

        alice = await command(slack, bot, f"<@{fs.USER_ID}|alice>", user_id=ADMIN)
        assert alice["text"].splitlines()[:2] == [f"*Usage of <@{fs.USER_ID}>*", today]
    finally:
        assert bot.stop() == 0, bot.log()
    assert "Traceback" not in bot.log()


async def command(slack: FakeSlack, bot: BotProcess, text: str, *, user_id: str = fs.USER_ID) -> dict:
    response_url = slack.new_response_url()
    form = fs.command_form("/usage", text, user_id=user_id, response_url=response_url)
    result = await slack.deliver_http(bot.events_url, form)
    assert result.status == 200 and result.elapsed < 3.0, result
    body = result.json()
    if body.get("text") == HOLDING_LINE:  # a slow machine: the report follows via response_url
        [body] = await slack.wait_for(lambda: slack.responses[response_url], timeout=10)
    return body
