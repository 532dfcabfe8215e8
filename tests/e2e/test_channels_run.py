"""End to end through the real `threadbot run` process: an admin configures a channel with /threadbot,
its turns carry that channel's prompt and model, auto-answer works there, and the Home tab is published."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from slack_sdk.models.views import View

from bot.config import DEFAULT_SYSTEM_PROMPT
from bot.conversation.channels import CHANNEL_RULES
from tests.botproc import BotProcess
from tests.fakes import slack as fs
from tests.fakes.anthropic import Reply
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.timeout(120)

ADMIN = "U0ADMIN"
HELP = "C0HELP"
PERSONA = "You are the IT help desk."


@pytest.fixture
def bot(fakes, tmp_path: Path):
    slack, model = fakes
    slack.add_user(ADMIN, name="admin")
    slack.add_channel(HELP, name="it-help", members=[fs.USER_ID, ADMIN])
    process = BotProcess(slack_api_url=slack.api_url, anthropic_url=model.base_url, db_path=tmp_path / "bot.db",
                         socket_mode=False, log_path=tmp_path / "bot.log",
                         extra_env={"THREADBOT_ADMINS": ADMIN, "THREADBOT_USER_RPM": "1000"})
    process.start()
    yield process
    assert process.stop() == 0, process.log()


async def command(slack: FakeSlack, bot: BotProcess, text: str, *, user: str = ADMIN) -> str:
    form = fs.command_form("/threadbot", text, user_id=user, channel_id=HELP, response_url=slack.new_response_url())
    result = await slack.deliver_http(bot.events_url, form)
    assert result.status == 200 and result.elapsed < 3.0, result.body
    return result.json()["text"]


async def deliver(slack: FakeSlack, bot: BotProcess, event: dict) -> None:
    result = await slack.deliver_http(bot.events_url, fs.event_callback(event))
    assert result.status == 200 and result.elapsed < 3.0, result.body


def answer(slack: FakeSlack, channel: str, thread_ts: str, text: str):
    return next((m for m in slack.messages_in_thread(channel, thread_ts)
                 if m.user == fs.BOT_USER_ID and m.text == text), None)


async def test_a_configured_channel_through_the_real_process(fakes, bot):
    slack, model = fakes
    assert (await command(slack, bot, "prompt " + PERSONA, user=fs.USER_ID)).startswith("Sorry, only the bot's admins")
    assert (await command(slack, bot, "prompt " + PERSONA)).startswith("Changed *prompt*")
    assert (await command(slack, bot, "model claude-haiku-4-5")).startswith("Changed *model*")
    assert (await command(slack, bot, "autoanswer on")).startswith("Changed *autoanswer*")

    model.add(Reply.text("Have you tried restarting?"))
    question = slack.user_message(HELP, "the printer is jammed")  # no @mention
    await deliver(slack, bot, question)
    await slack.wait_for(lambda: answer(slack, HELP, question["ts"], "Have you tried restarting?"), timeout=15,
                         what="the auto-answer")
    (request,) = model.requests
    assert request["model"] == "claude-haiku-4-5"
    assert request["system"][0]["text"] == f"{DEFAULT_SYSTEM_PROMPT}\n\n{CHANNEL_RULES}\n\n{PERSONA}"

    quiet = slack.user_message(fs.CHANNEL_ID, "nobody asked you")  # #general: auto-answer is off
    await deliver(slack, bot, quiet)

    await deliver(slack, bot, {"type": "app_home_opened", "user": ADMIN, "channel": "D0ADMIN", "tab": "home",
                               "event_ts": fs.next_ts()})
    await slack.wait_for(lambda: slack.home_views.get(ADMIN), timeout=15, what="the admin's Home tab")
    view = slack.home_views[ADMIN]
    View(**view).validate_json()
    shown = "\n".join(b["text"]["text"] for b in view["blocks"] if b["type"] == "section")
    assert f"<#{HELP}>: Prompt: _{PERSONA}_; Model: `claude-haiku-4-5`" in shown and "Auto-answer: on" in shown
    assert "*Workspace spend today*" in shown
    await asyncio.sleep(0.5)
    assert len(model.requests) == 1
