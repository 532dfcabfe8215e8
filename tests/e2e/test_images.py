"""End to end: images shared with a DM or a mention reach the model through the real `threadbot run` process,
and a follow-up in the thread still sends them (from the store, not from Slack)."""
from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from tests.e2e.test_run import deliver, final_reply, http_bot, replies  # noqa: F401  (fixture)
from tests.fakes import slack as fs
from tests.fakes.anthropic import Reply

pytestmark = pytest.mark.timeout(120)


def screenshot(width: int = 900, height: int = 600) -> bytes:
    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, "PNG")
    return out.getvalue()


def image_blocks(request: dict) -> list[dict]:
    return [b for m in request["messages"] for b in m["content"] if b.get("type") == "image"]


async def test_dm_image_goes_to_the_model_and_not_to_the_knowledge_base(fakes, http_bot):
    slack, model = fakes
    fid = slack.add_file("error.png", screenshot(), mimetype="image/png", filetype="png")
    event = fs.dm_message("what does this error say?", files=[{"id": fid, "name": "error.png", "mimetype": "image/png"}])
    model.add(Reply.text("It says: disk full."))
    await deliver(slack, http_bot, event)
    await final_reply(slack, fs.DM_CHANNEL_ID, event["ts"], "It says: disk full.")
    [image] = image_blocks(model.requests[-1])
    assert Image.open(io.BytesIO(base64.b64decode(image["source"]["data"]))).size == (900, 600)
    assert not any(m.text.startswith(":inbox_tray:") for m in replies(slack, fs.DM_CHANNEL_ID, event["ts"]))
    assert [c.params["file"] for c in slack.calls("files.info")] == [fid]


async def test_mention_with_an_image_then_a_follow_up_still_sees_it(fakes, http_bot):
    slack, model = fakes
    fid = slack.add_file("dash.png", screenshot(1600, 900), mimetype="image/png", filetype="png",
                         channels=[fs.CHANNEL_ID])
    mention = fs.app_mention("which panel is red?")
    # The app_mention and the message.channels event of a file share carry the same files.
    mention["files"] = [{"id": fid, "name": "dash.png", "mimetype": "image/png"}]
    model.add(Reply.text("The latency panel."))
    await deliver(slack, http_bot, mention)
    await final_reply(slack, fs.CHANNEL_ID, mention["ts"], "The latency panel.")
    [first] = image_blocks(model.requests[-1])

    model.add(Reply.text("The error rate panel."))
    follow_up = fs.app_mention("and the second one?", thread_ts=mention["ts"])
    await deliver(slack, http_bot, follow_up)
    await final_reply(slack, fs.CHANNEL_ID, mention["ts"], "The error rate panel.")
    [again] = image_blocks(model.requests[-1])
    assert again["source"]["data"] == first["source"]["data"]
    assert len(slack.calls("files.info")) == 1  # the follow-up did not go back to Slack
