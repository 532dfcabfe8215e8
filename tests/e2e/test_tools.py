"""End to end: the real `threadbot run` process calls get_weather against the Open-Meteo fake and keeps tool context."""
from __future__ import annotations

import json
from typing import Any

import pytest

from tests.botproc import BotProcess
from tests.fakes import slack as fs
from tests.fakes.anthropic import FakeAnthropic, Reply
from tests.fakes.open_meteo import FakeOpenMeteo
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.timeout(180)


def weather_model(body: dict[str, Any]) -> Reply:
    """A scripted model that decides from the messages it receives, as a real one would."""
    last = body["messages"][-1]["content"]
    results = [b for b in last if b["type"] == "tool_result"]
    if results:
        report = json.loads(results[0]["content"])
        return Reply.text(f"{report['place']['name']}: {report['current']['temperature']} right now.")
    question = last[-1]["text"]
    place = "Porto" if "Porto" in question else "Lisbon"
    return Reply.tool("get_weather", {"place": place})


async def test_weather_question_and_follow_up_through_the_real_process(tmp_path):
    slack = FakeSlack()
    slack.start_in_thread()
    model = FakeAnthropic(respond=weather_model)
    model.start_in_thread()
    try:
        with FakeOpenMeteo.in_thread() as weather:
            bot = BotProcess(slack_api_url=slack.api_url, anthropic_url=model.base_url, db_path=tmp_path / "bot.db",
                             socket_mode=False, log_path=tmp_path / "bot.log", extra_env=weather.env())
            bot.start()
            try:
                event = fs.app_mention("what's the weather in Lisbon?")
                result = await slack.deliver_http(bot.events_url, fs.event_callback(event))
                assert result.status == 200 and result.elapsed < 3.0
                lisbon = await slack.wait_for(
                    lambda: next((m for m in slack.messages_in_thread(fs.CHANNEL_ID, event["ts"])
                                  if m.user == fs.BOT_USER_ID and "right now" in m.text), None),
                    timeout=60, what="the Lisbon answer")
                assert lisbon.text == "Lisbon: 18.5 °C right now."

                follow_up = fs.app_mention("and in Porto?", thread_ts=event["ts"])
                result = await slack.deliver_http(bot.events_url, fs.event_callback(follow_up))
                assert result.status == 200
                porto = await slack.wait_for(
                    lambda: next((m for m in slack.messages_in_thread(fs.CHANNEL_ID, event["ts"])
                                  if m.user == fs.BOT_USER_ID and m.text.startswith("Porto")), None),
                    timeout=60, what="the Porto answer")
                assert porto.text == "Porto: 17.8 °C right now."
            finally:
                assert bot.stop() == 0, bot.log()
            assert [r.params["name"] for r in weather.requests_to("geocoding")] == ["Lisbon", "Porto"]
    finally:
        slack.stop_thread()
        model.stop_in_thread()

    assert [c.status for c in model.calls] == [200, 200, 200, 200]
    messages = model.requests[2]["messages"]  # the follow-up's first call
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    [call] = [b for b in messages[1]["content"] if b["type"] == "tool_use"]
    assert call["name"] == "get_weather" and call["input"] == {"place": "Lisbon"}
    [result] = messages[2]["content"]
    assert result["type"] == "tool_result" and result["tool_use_id"] == call["id"] and not result["is_error"]
    assert json.loads(result["content"])["place"]["country"] == "Portugal"
    assert [b["text"] for b in messages[3]["content"]] == ["Lisbon: 18.5 °C right now."]
    assert messages[4]["content"][-1]["text"] == "and in Porto?"
