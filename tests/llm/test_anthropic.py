"""AnthropicProvider against the loopback Messages API fake: streaming, tools, caching, retries, errors."""
from __future__ import annotations

import logging
import socket
import time
from typing import Any

import anthropic
import pytest

from bot.errors import ConfigError, ModelOverloaded, ModelRateLimited, ModelRejected, ModelUnavailable, PromptTooLong
from bot.llm.anthropic import AnthropicProvider
from bot.messages import (
    Message,
    MessageDone,
    ModelRequest,
    StreamEvent,
    TextBlock,
    TextDelta,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    ToolUseStarted,
    Usage,
)
from tests.fakes.anthropic import ErrorReply, FakeAnthropic, Reply, ToolUse

WEATHER = ToolSpec("get_weather", "Current weather for a city.",
                   {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
SEARCH = ToolSpec("search_knowledge", "Search the knowledge base.",
                  {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})


@pytest.fixture
async def fake():
    async with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def provider(fake):
    p = AnthropicProvider(api_key=fake.api_key, base_url=fake.base_url, max_retries=2,
                          max_retry_wait_s=0.05, timeout_s=10)
    yield p
    await p.aclose()


def ask(text: str = "What's up?", **options: Any) -> ModelRequest:
    return ModelRequest(model="claude-test", system="You are helpful.",
                        messages=[Message("user", [TextBlock(text)])], max_tokens=256, **options)


async def collect(provider: AnthropicProvider, request: ModelRequest) -> list[StreamEvent]:
    return [event async for event in provider.stream(request)]


async def collect_until_error(provider, request) -> tuple[list[StreamEvent], Exception]:
    events: list[StreamEvent] = []
    with pytest.raises(Exception) as info:
        async for event in provider.stream(request):
            events.append(event)
    return events, info.value


# --- streaming ----------------------------------------------------------------------------------


async def test_text_streams_in_several_deltas_and_assembles(fake, provider):
    answer = "Streaming works: here is a longer answer."
    fake.add(Reply.text(answer, chunk_chars=5))

    events = await collect(provider, ask())

    deltas = [e for e in events if isinstance(e, TextDelta)]
    done = events[-1]
    assert isinstance(done, MessageDone)
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    assert len(deltas) == 9  # 41 chars in 5-char chunks
    assert "".join(d.text for d in deltas) == answer
    assert done.message == Message("assistant", [TextBlock(answer)])
    assert done.stop_reason == "end_turn"
    assert done.model == "claude-test"


async def test_deltas_arrive_while_the_model_is_still_generating(fake, provider):
    fake.add(Reply.text("abcdefghij", chunk_chars=2, token_delay_s=0.1))  # 5 deltas, 0.1 s apart
    start = time.monotonic()
    arrivals: list[tuple[str, float]] = []
    async for event in provider.stream(ask()):
        arrivals.append((type(event).__name__, time.monotonic() - start))

    first_delta = next(t for kind, t in arrivals if kind == "TextDelta")
    finished = arrivals[-1][1]
    assert arrivals[-1][0] == "MessageDone"
    # Four more 0.1 s gaps follow the first delta: it was delivered, not buffered until the end.
    assert finished >= 0.45
    assert finished - first_delta >= 0.35


async def test_tool_use_input_is_assembled_from_json_fragments(fake, provider):
    tool_input = {"city": "Paris", "days": [1, 2, 3], "units": "metric"}
    fake.add(Reply.tool("get_weather", tool_input, id="toolu_01", json_chunk_chars=3))

    events = await collect(provider, ask("Weather in Paris?", tools=[WEATHER]))

    assert events[0] == ToolUseStarted(id="toolu_01", name="get_weather")
    done = events[-1]
    assert isinstance(done, MessageDone)
    assert done.stop_reason == "tool_use"
    assert done.message.content == [ToolUseBlock(id="toolu_01", name="get_weather", input=tool_input)]


async def test_two_tool_use_blocks_in_one_reply(fake, provider):
    fake.add(Reply(content=["Let me look.", ToolUse("get_weather", {"city": "Oslo"}, id="toolu_a"),
                            ToolUse("search_knowledge", {"query": "travel policy"}, id="toolu_b")]))

    events = await collect(provider, ask(tools=[WEATHER, SEARCH]))

    started = [e for e in events if isinstance(e, ToolUseStarted)]
    assert started == [ToolUseStarted("toolu_a", "get_weather"), ToolUseStarted("toolu_b", "search_knowledge")]
    done = events[-1]
    assert isinstance(done, MessageDone)
    assert done.message.content == [
        TextBlock("Let me look."),
        ToolUseBlock("toolu_a", "get_weather", {"city": "Oslo"}),
        ToolUseBlock("toolu_b", "search_knowledge", {"query": "travel policy"}),
    ]
    assert done.stop_reason == "tool_use"


async def test_usage_includes_cache_tokens(fake, provider):
    fake.add(Reply.text("cached", input_tokens=120, output_tokens=7,
                        cache_creation_input_tokens=1000, cache_read_input_tokens=2500))

    done = (await collect(provider, ask()))[-1]

    assert isinstance(done, MessageDone)
    assert done.usage == Usage(input_tokens=120, output_tokens=7,
                               cache_creation_input_tokens=1000, cache_read_input_tokens=2500)


async def test_max_tokens_is_explicit_and_stop_reason_passes_through(fake, provider):
    fake.add(Reply.text("This answer was cut", stop_reason="max_tokens"))

    done = (await collect(provider, ask()))[-1]

    assert isinstance(done, MessageDone)
    assert done.stop_reason == "max_tokens"
    assert fake.requests[0]["max_tokens"] == 256


# --- request translation ------------------------------------------------------------------------


async def test_cache_control_on_system_last_tool_and_history_point(fake, provider):
    history = [
        Message("user", [TextBlock("Weather in Oslo?")]),
        Message("assistant", [TextBlock("Checking."), ToolUseBlock("toolu_1", "get_weather", {"city": "Oslo"})]),
        Message("user", [ToolResultBlock("toolu_1", "12°C, rain")]),
        Message("assistant", [TextBlock("12°C and rain.")]),
        Message("user", [TextBlock("And tomorrow?")]),
    ]
    request = ModelRequest(model="claude-test", system="Be brief.", messages=history, max_tokens=100,
                           tools=[WEATHER, SEARCH], cache_history_at=3)

    await collect(provider, request)

    body = fake.requests[0]
    assert body["system"] == [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    assert "cache_control" not in body["tools"][0]
    assert body["tools"][1] == {"name": "search_knowledge", "description": "Search the knowledge base.",
                                "input_schema": SEARCH.input_schema, "cache_control": {"type": "ephemeral"}}
    marked = [(i, j) for i, m in enumerate(body["messages"]) for j, b in enumerate(m["content"])
              if "cache_control" in b]
    assert marked == [(3, 0)]
    assert body["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": "toolu_1",
                                                 "content": "12°C, rain", "is_error": False}
    assert body["stream"] is True
    assert "tool_choice" not in body


async def test_no_history_marker_when_cache_history_at_is_none(fake, provider):
    await collect(provider, ask())
    body = fake.requests[0]
    assert all("cache_control" not in b for m in body["messages"] for b in m["content"])
    assert "tools" not in body


async def test_tool_choice_forces_the_named_tool(fake, provider):
    fake.add(Reply.tool("search_knowledge", {"query": "x"}))

    await collect(provider, ask(tools=[WEATHER, SEARCH], tool_choice="search_knowledge"))

    assert fake.requests[0]["tool_choice"] == {"type": "tool", "name": "search_knowledge"}


# --- retries ------------------------------------------------------------------------------------


async def test_overloaded_then_success_is_retried_into_one_answer(fake, provider):
    fake.add(ErrorReply.overloaded(), Reply.text("second time lucky"))

    events = await collect(provider, ask())

    assert [c.status for c in fake.calls] == [529, 200]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "second time lucky"
    assert sum(isinstance(e, MessageDone) for e in events) == 1


async def test_retry_after_is_honoured_only_up_to_the_cap(fake):
    provider = AnthropicProvider(api_key=fake.api_key, base_url=fake.base_url, max_retry_wait_s=0.2)
    fake.add(ErrorReply.rate_limited(retry_after=3600), Reply.text("done"))
    start = time.monotonic()

    done = (await collect(provider, ask()))[-1]

    elapsed = time.monotonic() - start
    await provider.aclose()
    assert isinstance(done, MessageDone) and done.message.text == "done"
    assert 0.19 <= elapsed < 1.5  # waited the cap, not the hour
    assert [c.status for c in fake.calls] == [429, 200]


async def test_persistent_overload_gives_up_after_max_retries(fake, provider):
    fake.add(*[ErrorReply.overloaded() for _ in range(4)])

    with pytest.raises(ModelOverloaded) as info:
        await collect(provider, ask())

    assert info.value.status_code == 529
    assert info.value.usage is None  # nothing was spent before the stream started
    assert len(fake.calls) == 3  # first try + max_retries=2
    assert fake.pending == 1


async def test_rate_limit_maps_to_model_rate_limited(fake):
    provider = AnthropicProvider(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
    fake.add(ErrorReply.rate_limited(retry_after=1))
    with pytest.raises(ModelRateLimited) as info:
        await collect(provider, ask())
    await provider.aclose()
    assert info.value.status_code == 429
    assert len(fake.calls) == 1


async def test_server_errors_are_retried_then_map_to_unavailable(fake, provider):
    fake.add(ErrorReply.api_error(500), ErrorReply.api_error(503), ErrorReply.api_error(500))
    with pytest.raises(ModelUnavailable) as info:
        await collect(provider, ask())
    assert info.value.status_code == 500
    assert [c.status for c in fake.calls] == [500, 503, 500]


async def test_disconnect_after_text_raises_unavailable_without_retry(fake, provider):
    fake.add(Reply.text("abcdefghijklmnop", chunk_chars=2, disconnect_after=3, input_tokens=50),
             Reply.text("must not be requested"))

    events, error = await collect_until_error(provider, ask())

    assert isinstance(error, ModelUnavailable)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "abcdef"
    assert not any(isinstance(e, MessageDone) for e in events)
    assert len(fake.calls) == 1 and fake.pending == 1
    # message_start's usage was already reported, so the failed call still accounts its tokens.
    assert error.usage == Usage(input_tokens=50, output_tokens=1)


async def test_disconnect_before_any_text_is_retried(fake, provider):
    fake.add(Reply.text("lost", disconnect_after=0, input_tokens=40), Reply.text("found", input_tokens=40,
                                                                                   output_tokens=2))

    events = await collect(provider, ask())

    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "found"
    done = events[-1]
    assert isinstance(done, MessageDone)
    # The lost attempt's prompt tokens were billed too.
    assert done.usage == Usage(input_tokens=80, output_tokens=3)
    assert len(fake.calls) == 2


async def test_error_event_mid_stream_after_text_is_not_retried(fake, provider):
    fake.add(Reply.text("partial answer", chunk_chars=3, error_after=2), Reply.text("unused"))

    events, error = await collect_until_error(provider, ask())

    assert isinstance(error, ModelOverloaded)
    assert error.status_code == 529
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "partia"
    assert len(fake.calls) == 1


async def test_connection_refused_maps_to_unavailable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = AnthropicProvider(api_key="sk-x", base_url=f"http://127.0.0.1:{port}", max_retries=1,
                                 max_retry_wait_s=0.01)
    with pytest.raises(ModelUnavailable) as info:
        await collect(provider, ask())
    await provider.aclose()
    assert info.value.status_code is None


async def test_read_timeout_maps_to_unavailable(fake):
    provider = AnthropicProvider(api_key=fake.api_key, base_url=fake.base_url, max_retries=0, timeout_s=0.3)
    fake.add(Reply.text("slow", token_delay_s=2.0))
    start = time.monotonic()
    with pytest.raises(ModelUnavailable):
        await collect(provider, ask())
    await provider.aclose()
    assert time.monotonic() - start < 1.5


# --- rejections ---------------------------------------------------------------------------------


async def test_invalid_history_is_rejected_by_the_fake_and_maps_to_model_rejected(fake, provider):
    history = [
        Message("user", [TextBlock("Weather?")]),
        Message("assistant", [ToolUseBlock("toolu_9", "get_weather", {"city": "Rome"})]),
        Message("user", [TextBlock("never mind")]),  # the tool_use is left unanswered
    ]
    request = ModelRequest(model="claude-test", system="", messages=history, max_tokens=50, tools=[WEATHER])

    with pytest.raises(ModelRejected) as info:
        await collect(provider, request)

    assert info.value.status_code == 400
    assert "toolu_9" in str(info.value) and "tool_result" in str(info.value)
    assert len(fake.calls) == 1
    assert "system" not in fake.requests[0]


async def test_prompt_too_long_maps_to_its_own_error(fake, provider):
    fake.add(ErrorReply.prompt_too_long())
    with pytest.raises(PromptTooLong) as info:
        await collect(provider, ask())
    assert info.value.status_code == 400
    assert len(fake.calls) == 1


async def test_wrong_key_is_rejected_without_leaking_it(fake, caplog):
    secret = "sk-ant-wrong-secret-0123456789"
    provider = AnthropicProvider(api_key=secret, base_url=fake.base_url)
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ModelRejected) as info:
        await collect(provider, ask())
    await provider.aclose()

    assert info.value.status_code == 401
    assert "authentication_error" in str(info.value)
    assert secret not in str(info.value) and secret not in repr(info.value.args)
    assert secret not in caplog.text
    assert [c.status for c in fake.calls] == [401]
    assert all(secret not in v for c in fake.calls for v in c.headers.values())


# --- the fake itself ----------------------------------------------------------------------------


async def test_fake_defaults_to_an_echo_and_serves_non_streaming_requests(fake):
    client = anthropic.AsyncAnthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
    reply = await client.messages.create(model="m", max_tokens=20,
                                         messages=[{"role": "user", "content": "ping me"}])
    await client.close()
    assert reply.content[0].text == "echo: ping me"
    assert reply.stop_reason == "end_turn"
    assert reply.usage.input_tokens > 0


async def test_fake_validates_roles_and_max_tokens(fake):
    client = anthropic.AsyncAnthropic(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)
    with pytest.raises(anthropic.BadRequestError, match="roles must alternate"):
        await client.messages.create(model="m", max_tokens=5, messages=[
            {"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    with pytest.raises(anthropic.BadRequestError, match="first message must use the \"user\" role"):
        await client.messages.create(model="m", max_tokens=5, messages=[{"role": "assistant", "content": "a"}])
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        await client.messages.create(model="m", max_tokens=0, messages=[{"role": "user", "content": "a"}])
    await client.close()
    assert [c.status for c in fake.calls] == [400, 400, 400]


async def test_fake_responder_drives_a_tool_round_trip(fake, provider):
    def respond(body: dict) -> Reply:
        last = body["messages"][-1]["content"][0]
        if last["type"] == "tool_result":
            return Reply.text(f"It is {last['content']}.")
        return Reply.tool("get_weather", {"city": "Lima"}, id="toolu_lima")

    fake.respond = respond
    first = (await collect(provider, ask("Weather in Lima?", tools=[WEATHER])))[-1]
    assert isinstance(first, MessageDone) and first.stop_reason == "tool_use"
    history = [Message("user", [TextBlock("Weather in Lima?")]), first.message,
               Message("user", [ToolResultBlock("toolu_lima", "19°C")])]
    second = (await collect(provider, ModelRequest(model="claude-test", system="s", messages=history,
                                                    max_tokens=50, tools=[WEATHER])))[-1]
    assert isinstance(second, MessageDone)
    assert second.message.text == "It is 19°C."
    assert [c.status for c in fake.calls] == [200, 200]


async def test_fake_runs_in_a_background_thread():
    server = FakeAnthropic()
    base_url = server.start_in_thread()
    try:
        server.add(Reply.text("from the thread"))
        provider = AnthropicProvider(api_key=server.api_key, base_url=base_url)
        done = (await collect(provider, ask()))[-1]
        await provider.aclose()
    finally:
        server.stop_in_thread()
    assert isinstance(done, MessageDone) and done.message.text == "from the thread"
    assert len(server.calls) == 1


def test_missing_key_is_a_config_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        AnthropicProvider(api_key=None, base_url="http://127.0.0.1:9")


async def test_key_and_base_url_from_the_environment_are_honoured(fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", fake.api_key)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    provider = AnthropicProvider(api_key=None, base_url=None)
    done = (await collect(provider, ask("from env")))[-1]
    await provider.aclose()
    assert isinstance(done, MessageDone) and done.message.text == "echo: from env"
    assert [c.status for c in fake.calls] == [200]


# --- assembling the reply from the raw events ----------------------------------------------------


async def test_tool_input_split_into_one_character_fragments_is_parsed_whole(fake, provider):
    tool_input = {"city": "São Paulo", "note": "naïve \"quotes\" and \\ slashes", "days": [1, 2], "deep": {"a": None}}
    fake.add(Reply.tool("get_weather", tool_input, id="toolu_frag", text="Checking.", json_chunk_chars=1))

    events = await collect(provider, ask(tools=[WEATHER]))

    done = events[-1]
    assert isinstance(done, MessageDone)
    assert done.message.content == [TextBlock("Checking."), ToolUseBlock("toolu_frag", "get_weather", tool_input)]
    assert [e for e in events if isinstance(e, ToolUseStarted)] == [ToolUseStarted("toolu_frag", "get_weather")]


async def test_empty_tool_input_stays_an_empty_object(fake, provider):
    fake.add(Reply(content=[ToolUse("get_weather", {}, id="toolu_empty"), ToolUse("search_knowledge", {"query": "q"},
                                                                                   id="toolu_q")]))

    done = (await collect(provider, ask(tools=[WEATHER, SEARCH])))[-1]

    assert isinstance(done, MessageDone)
    assert done.message.content == [ToolUseBlock("toolu_empty", "get_weather", {}),
                                    ToolUseBlock("toolu_q", "search_knowledge", {"query": "q"})]


async def test_usage_and_stop_reason_come_from_message_delta(fake, provider):
    # message_start carries output_tokens=1; the final count only arrives with message_delta.
    fake.add(Reply.text("a long enough answer", output_tokens=42, input_tokens=9, stop_reason="max_tokens"))

    done = (await collect(provider, ask()))[-1]

    assert isinstance(done, MessageDone)
    assert done.stop_reason == "max_tokens"
    assert done.usage == Usage(input_tokens=9, output_tokens=42)


def _event(data: dict[str, Any]) -> Any:
    """A raw stream event exactly as the SDK decodes one from the wire."""
    from anthropic._models import construct_type
    from anthropic.types import RawMessageStreamEvent

    return construct_type(type_=RawMessageStreamEvent, value=data)


def _start(**usage: int) -> Any:
    return _event({"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test", "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 1, **usage}}})


def test_message_delta_totals_replace_the_start_and_omitted_ones_keep_it():
    from bot.llm.anthropic import MessageAssembly

    reply = MessageAssembly(_start(cache_read_input_tokens=500, cache_creation_input_tokens=70))
    reply.message_delta(_event({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                "usage": {"output_tokens": 33, "input_tokens": 12}}))

    assert reply.stop_reason == "end_turn"
    assert reply.usage == Usage(input_tokens=12, output_tokens=33, cache_creation_input_tokens=70,
                                cache_read_input_tokens=500)


def test_a_tool_input_cut_off_at_max_tokens_keeps_what_arrived():
    from bot.llm.anthropic import MessageAssembly

    reply = MessageAssembly(_start())
    reply.block_start(0, _event({"type": "content_block_start", "index": 0, "content_block": {
        "type": "tool_use", "id": "toolu_cut", "name": "get_weather", "input": {}}}).content_block)
    for piece in ('{"city": "Ber', 'lin", "units": "met'):
        reply.delta(0, _event({"type": "content_block_delta", "index": 0,
                               "delta": {"type": "input_json_delta", "partial_json": piece}}).delta)
    reply.block_stop(0)

    assert reply.message().content == [ToolUseBlock("toolu_cut", "get_weather", {"city": "Berlin"})]


def test_tool_input_that_is_not_json_is_a_model_error_and_other_blocks_are_skipped():
    from bot.llm.anthropic import MessageAssembly

    reply = MessageAssembly(_start())
    reply.block_start(0, _event({"type": "content_block_start", "index": 0, "content_block": {
        "type": "thinking", "thinking": "", "signature": ""}}).content_block)
    reply.delta(0, _event({"type": "content_block_delta", "index": 0,
                           "delta": {"type": "thinking_delta", "thinking": "hmm"}}).delta)
    reply.block_start(1, _event({"type": "content_block_start", "index": 1, "content_block": {
        "type": "text", "text": ""}}).content_block)
    reply.delta(1, _event({"type": "content_block_delta", "index": 1,
                           "delta": {"type": "text_delta", "text": "Here."}}).delta)
    assert reply.message().content == [TextBlock("Here.")]

    reply.block_start(2, _event({"type": "content_block_start", "index": 2, "content_block": {
        "type": "tool_use", "id": "toolu_bad", "name": "get_weather", "input": {}}}).content_block)
    reply.delta(2, _event({"type": "content_block_delta", "index": 2,
                           "delta": {"type": "input_json_delta", "partial_json": "[1, 2]"}}).delta)
    with pytest.raises(ModelUnavailable, match="toolu_bad"):
        reply.block_stop(2)
