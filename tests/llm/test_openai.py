"""OpenAIProvider against the loopback OpenAI fake: streaming, tools, usage, history, retries, errors."""
from __future__ import annotations

import json
import socket
import time

import openai
import pytest

from bot.config import Settings
from bot.errors import (
    ConfigError,
    ModelOverloaded,
    ModelRateLimited,
    ModelRejected,
    ModelUnavailable,
    PromptTooLong,
)
from bot.llm import provider_for
from bot.llm.openai import PLACEHOLDER_API_KEY, OpenAIProvider
from bot.messages import (
    Message,
    MessageDone,
    ModelRequest,
    TextBlock,
    TextDelta,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    ToolUseStarted,
    Usage,
)
from tests.fakes.openai import FakeError, FakeOpenAI, FakeToolCall, FakeUsage, ScriptedReply

KEY = "sk-test-fake-key-1234"
WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a place.",
    input_schema={"type": "object", "properties": {"place": {"type": "string"}}, "required": ["place"]},
)
TIME = ToolSpec(name="get_time", description="Current time in a zone.",
                input_schema={"type": "object", "properties": {"zone": {"type": "string"}}})


@pytest.fixture
async def fake():
    server = FakeOpenAI(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def provider(fake):
    # Short waits keep retry tests fast; the logic is the same as with the defaults.
    p = OpenAIProvider(api_key=KEY, base_url=fake.base_url, max_retries=3, max_retry_wait_s=0.05)
    yield p
    await p.aclose()


def ask(text: str = "Hi", *, tools=(), messages=None, **options) -> ModelRequest:
    return ModelRequest(
        model=options.pop("model", "gpt-4o-mini"),
        system=options.pop("system", "Be brief."),
        messages=messages if messages is not None else [Message("user", [TextBlock(text)])],
        max_tokens=options.pop("max_tokens", 256),
        tools=list(tools),
        **options,
    )


async def collect(provider: OpenAIProvider, request: ModelRequest) -> list:
    return [event async for event in provider.stream(request)]


def done_of(events: list) -> MessageDone:
    assert isinstance(events[-1], MessageDone)
    assert not any(isinstance(e, MessageDone) for e in events[:-1])
    return events[-1]


# --- streaming ---------------------------------------------------------------------------------


async def test_text_streams_in_many_deltas_and_assembles(fake, provider):
    text = "Hello there, this answer arrives in small pieces."
    fake.script(ScriptedReply(text=text, text_chunk_chars=4, model="gpt-4o-mini-2024-07-18"))

    events = await collect(provider, ask("Say hello"))

    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert len(deltas) == len(range(0, len(text), 4))
    assert "".join(deltas) == text
    done = done_of(events)
    assert done.message == Message("assistant", [TextBlock(text)])
    assert done.stop_reason == "end_turn"
    assert done.model == "gpt-4o-mini-2024-07-18"

    [sent] = fake.chat_requests
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    body = sent.body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] == 256 and "max_tokens" not in body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]
    assert "tools" not in body and "tool_choice" not in body


async def test_deltas_arrive_before_the_stream_ends(fake, provider):
    fake.script(ScriptedReply(text="one two three four five six", text_chunk_chars=4, delay_s=0.03))
    arrivals = []
    async for event in provider.stream(ask()):
        arrivals.append((time.monotonic(), event))
    first_delta = next(t for t, e in arrivals if isinstance(e, TextDelta))
    finished = arrivals[-1][0]
    # 8 chunks at 30 ms each: the first delta must not wait for the whole answer.
    assert finished - first_delta > 0.1


async def test_tool_call_with_fragmented_arguments(fake, provider):
    arguments = {"place": "Zürich, Switzerland", "units": "metric"}
    fake.script(ScriptedReply(
        text="Let me check.",
        tool_calls=[FakeToolCall("get_weather", arguments, id="call_abc")],
        argument_chunk_chars=3,
    ))

    events = await collect(provider, ask("Weather in Zürich?", tools=[WEATHER]))

    started = [e for e in events if isinstance(e, ToolUseStarted)]
    assert started == [ToolUseStarted(id="call_abc", name="get_weather")]
    assert events.index(started[0]) < len(events) - 1
    done = done_of(events)
    assert done.stop_reason == "tool_use"
    assert done.message.content == [
        TextBlock("Let me check."),
        ToolUseBlock(id="call_abc", name="get_weather", input=arguments),
    ]
    body = fake.chat_requests[0].body
    assert body["tools"] == [{
        "type": "function",
        "function": {"name": "get_weather", "description": "Current weather for a place.",
                     "parameters": WEATHER.input_schema},
    }]
    assert "tool_choice" not in body


async def test_two_tool_calls_in_one_turn(fake, provider):
    fake.script(ScriptedReply(tool_calls=[
        FakeToolCall("get_weather", {"place": "Oslo"}, id="call_1"),
        FakeToolCall("get_time", {"zone": "Europe/Oslo"}, id="call_2"),
    ]))

    events = await collect(provider, ask("Weather and time in Oslo?", tools=[WEATHER, TIME]))

    assert [e for e in events if isinstance(e, ToolUseStarted)] == [
        ToolUseStarted("call_1", "get_weather"), ToolUseStarted("call_2", "get_time"),
    ]
    assert not any(isinstance(e, TextDelta) for e in events)
    done = done_of(events)
    assert done.message.content == [
        ToolUseBlock("call_1", "get_weather", {"place": "Oslo"}),
        ToolUseBlock("call_2", "get_time", {"zone": "Europe/Oslo"}),
    ]
    assert done.stop_reason == "tool_use"


async def test_malformed_arguments_are_kept_raw(fake, provider):
    fake.script(ScriptedReply(tool_calls=[FakeToolCall("get_weather", '{"place": "Oslo"', id="call_x")]))
    done = done_of(await collect(provider, ask(tools=[WEATHER])))
    assert done.message.tool_uses == [ToolUseBlock("call_x", "get_weather", {"_raw": '{"place": "Oslo"'})]


async def test_forced_tool_choice(fake, provider):
    fake.script(ScriptedReply(tool_calls=[FakeToolCall("get_time", {"zone": "UTC"})]))
    await collect(provider, ask(tools=[WEATHER, TIME], tool_choice="get_time"))
    assert fake.chat_requests[0].body["tool_choice"] == {"type": "function", "function": {"name": "get_time"}}


async def test_usage_is_normalised_to_anthropic_semantics(fake, provider):
    fake.script(ScriptedReply(text="ok", usage=FakeUsage(prompt_tokens=1200, completion_tokens=37,
                                                          cached_tokens=1024)))
    done = done_of(await collect(provider, ask()))
    assert done.usage == Usage(input_tokens=176, output_tokens=37, cache_creation_input_tokens=0,
                               cache_read_input_tokens=1024)


@pytest.mark.parametrize("finish, stop_reason", [
    ("stop", "end_turn"),
    ("length", "max_tokens"),
    ("content_filter", "refusal"),
    ("tool_calls", "tool_use"),
    ("something_new", "something_new"),
])
async def test_stop_reason_mapping(fake, provider, finish, stop_reason):
    calls = [FakeToolCall("get_weather", {"place": "Rome"})] if finish == "tool_calls" else []
    fake.script(ScriptedReply(text="partial", tool_calls=calls, finish_reason=finish))
    assert done_of(await collect(provider, ask(tools=[WEATHER]))).stop_reason == stop_reason


async def test_tool_calls_reported_as_stop_still_mean_tool_use(fake, provider):
    # Several local servers finish a tool-call reply with "stop"; the agent loop must still run the tools.
    fake.script(ScriptedReply(tool_calls=[FakeToolCall("get_weather", {"place": "Rome"})], finish_reason="stop"))
    assert done_of(await collect(provider, ask(tools=[WEATHER]))).stop_reason == "tool_use"


# --- history translation -----------------------------------------------------------------------


async def test_history_becomes_chat_messages_with_tool_messages(fake, provider):
    history = [
        Message("user", [TextBlock("Weather in Oslo and the time?")]),
        Message("assistant", [
            TextBlock("Checking both."),
            ToolUseBlock("call_w", "get_weather", {"place": "Oslo"}),
            ToolUseBlock("call_t", "get_time", {"zone": "Europe/Oslo"}),
        ]),
        Message("user", [
            ToolResultBlock("call_w", '{"temp_c": 4}'),
            ToolResultBlock("call_t", "unknown zone", is_error=True),
        ]),
        Message("assistant", [ToolUseBlock("call_t2", "get_time", {"zone": "CET"})]),
        Message("user", [ToolResultBlock("call_t2", "14:05")]),
        Message("assistant", [TextBlock("4 °C and 14:05.")]),
        Message("user", [TextBlock("Thanks!")]),
    ]
    fake.script(ScriptedReply(text="You're welcome."))

    done = done_of(await collect(provider, ask(messages=history, tools=[WEATHER, TIME])))

    assert done.message.text == "You're welcome."
    assert fake.chat_requests[0].body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo and the time?"},
        {"role": "assistant", "content": "Checking both.", "tool_calls": [
            {"id": "call_w", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"place": "Oslo"}'}},
            {"id": "call_t", "type": "function",
             "function": {"name": "get_time", "arguments": '{"zone": "Europe/Oslo"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_w", "content": '{"temp_c": 4}'},
        {"role": "tool", "tool_call_id": "call_t", "content": "Error: unknown zone"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_t2", "type": "function", "function": {"name": "get_time", "arguments": '{"zone": "CET"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_t2", "content": "14:05"},
        {"role": "assistant", "content": "4 °C and 14:05."},
        {"role": "user", "content": "Thanks!"},
    ]


async def test_anthropic_history_continues_on_openai(fake, provider):
    # A thread begun on Claude, as stored: Messages-API JSON with toolu_ ids and a tool_result
    # followed by text in the same user turn (which the Messages API allows).
    stored = [
        {"role": "user", "content": [{"type": "text", "text": "What's the weather in Paris?"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "I'll look it up."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
             "input": {"place": "Paris"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "12 °C, rain",
             "is_error": False},
            {"type": "text", "text": "And tomorrow?"},
        ]},
    ]
    history = [Message.from_json(m) for m in stored]
    fake.script(ScriptedReply(tool_calls=[FakeToolCall("get_weather", {"place": "Paris", "day": "tomorrow"},
                                                       id="call_next")]))

    done = done_of(await collect(provider, ask(messages=history, tools=[WEATHER])))

    assert done.message.tool_uses == [ToolUseBlock("call_next", "get_weather", {"place": "Paris", "day": "tomorrow"})]
    sent = fake.chat_requests[0].body["messages"]
    assert sent[2]["tool_calls"][0]["id"] == "toolu_01A09q90qw90lq917835lq9"
    assert json.loads(sent[2]["tool_calls"][0]["function"]["arguments"]) == {"place": "Paris"}
    assert sent[3:] == [
        {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "12 °C, rain"},
        {"role": "user", "content": "And tomorrow?"},
    ]
    # The continued turn round-trips through the canonical JSON form unchanged.
    assert Message.from_json(done.message.to_json()) == done.message


async def test_unanswered_tool_call_is_rejected_like_the_real_api(fake, provider):
    broken = [
        Message("user", [TextBlock("Weather?")]),
        Message("assistant", [ToolUseBlock("call_lost", "get_weather", {"place": "Oslo"})]),
        Message("user", [TextBlock("Hello?")]),
    ]
    with pytest.raises(ModelRejected) as caught:
        await collect(provider, ask(messages=broken, tools=[WEATHER]))
    assert caught.value.status_code == 400
    assert "call_lost" in str(caught.value)
    assert len(fake.chat_requests) == 1


# --- retries -----------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", [
    FakeError.overloaded(), FakeError.server_error(500), FakeError.server_error(502),
    FakeError.server_error(504), FakeError.rate_limited(retry_after=None),
])
async def test_transient_failure_then_success_is_retried(fake, provider, failure):
    fake.script(failure, ScriptedReply(text="Recovered."))
    done = done_of(await collect(provider, ask()))
    assert done.message.text == "Recovered."
    assert len(fake.chat_requests) == 2


async def test_silent_disconnect_is_retried(fake, provider):
    # Cut after the role chunk only: nothing reached the caller, so a retry repeats nothing.
    fake.script(ScriptedReply(text="lost", disconnect_after_chunks=1), ScriptedReply(text="Second try."))
    events = await collect(provider, ask())
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Second try."
    assert len(fake.chat_requests) == 2


async def test_retries_are_bounded_and_then_raise(fake, provider):
    fake.script(*[FakeError.overloaded() for _ in range(10)])
    with pytest.raises(ModelOverloaded) as caught:
        await collect(provider, ask())
    assert caught.value.status_code == 503
    assert len(fake.chat_requests) == 4  # the first call and max_retries=3 retries


async def test_long_retry_after_is_capped(fake):
    p = OpenAIProvider(api_key=KEY, base_url=fake.base_url, max_retries=2, max_retry_wait_s=0.3)
    fake.script(FakeError.rate_limited(retry_after="3600"), ScriptedReply(text="ok"))
    started = time.monotonic()
    try:
        done = done_of(await collect(p, ask()))
    finally:
        await p.aclose()
    elapsed = time.monotonic() - started
    assert done.message.text == "ok"
    assert 0.3 <= elapsed < 2.0


async def test_short_retry_after_is_honoured(fake):
    p = OpenAIProvider(api_key=KEY, base_url=fake.base_url, max_retries=2, max_retry_wait_s=5.0)
    # 0.6 s is longer than the first backoff (at most 0.5 s), so only the header explains the wait.
    fake.script(FakeError.rate_limited(retry_after="0.6"), ScriptedReply(text="ok"))
    started = time.monotonic()
    try:
        await collect(p, ask())
    finally:
        await p.aclose()
    assert 0.6 <= time.monotonic() - started < 3.0


async def test_retry_budget_stops_waiting(fake):
    p = OpenAIProvider(api_key=KEY, base_url=fake.base_url, max_retries=5, max_retry_wait_s=1.0,
                       retry_budget_s=0.5)
    fake.script(FakeError.rate_limited(retry_after="1"), ScriptedReply(text="never"))
    started = time.monotonic()
    try:
        with pytest.raises(ModelRateLimited):
            await collect(p, ask())
    finally:
        await p.aclose()
    assert time.monotonic() - started < 0.5
    assert len(fake.chat_requests) == 1


async def test_no_retry_after_text_was_streamed(fake, provider):
    fake.script(ScriptedReply(text="This answer will be cut off", text_chunk_chars=4, disconnect_after_chunks=4),
                ScriptedReply(text="should never be requested"))
    events = []
    with pytest.raises(ModelUnavailable):
        async for event in provider.stream(ask()):
            events.append(event)
    assert "".join(e.text for e in events) == "This answer "
    assert len(fake.chat_requests) == 1


async def test_error_event_mid_stream_after_text_is_not_retried(fake, provider):
    fake.script(ScriptedReply(text="Partial answer", error_after_chunks=3), ScriptedReply(text="never"))
    events = []
    with pytest.raises(ModelUnavailable) as caught:
        async for event in provider.stream(ask()):
            events.append(event)
    assert "server had an error" in str(caught.value)
    assert [e.text for e in events] == ["Part", "ial "]
    assert len(fake.chat_requests) == 1


# --- error mapping -----------------------------------------------------------------------------


@pytest.mark.parametrize("failure, error_type, attempts", [
    (FakeError.rate_limited(retry_after="0"), ModelRateLimited, 4),
    (FakeError.insufficient_quota(), ModelRejected, 1),
    (FakeError.server_error(500), ModelUnavailable, 4),
    (FakeError.overloaded(), ModelOverloaded, 4),
    (FakeError.server_error(501), ModelUnavailable, 1),
    (FakeError.context_length_exceeded(), PromptTooLong, 1),
    # vLLM-style: no error code, only the wording.
    (FakeError(400, "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
               "BadRequestError"), PromptTooLong, 1),
    (FakeError(404, "The model `gpt-9` does not exist or you do not have access to it.",
               "invalid_request_error", "model_not_found"), ModelRejected, 1),
])
async def test_errors_map_to_project_errors(fake, provider, failure, error_type, attempts):
    fake.script(*[failure] * 5)
    with pytest.raises(error_type) as caught:
        await collect(provider, ask())
    assert type(caught.value) is error_type
    assert caught.value.status_code == failure.status
    assert len(fake.chat_requests) == attempts


async def test_insufficient_quota_says_so(fake, provider):
    fake.script(FakeError.insufficient_quota())
    with pytest.raises(ModelRejected) as caught:
        await collect(provider, ask())
    assert "insufficient_quota" in str(caught.value)
    assert "billing" in str(caught.value)


async def test_wrong_key_is_rejected_without_leaking_it(fake):
    wrong = "sk-wrong-key-0000000000000000"
    p = OpenAIProvider(api_key=wrong, base_url=fake.base_url, max_retries=3)
    try:
        with pytest.raises(ModelRejected) as caught:
            await collect(p, ask())
    finally:
        await p.aclose()
    assert caught.value.status_code == 401
    assert "OPENAI_API_KEY" in str(caught.value)
    assert wrong not in str(caught.value)
    assert len(fake.chat_requests) == 1


async def test_key_echoed_by_a_server_is_redacted(fake, provider):
    fake.script(FakeError(400, f"bad request from key {KEY}", "invalid_request_error"))
    with pytest.raises(ModelRejected) as caught:
        await collect(provider, ask())
    assert KEY not in str(caught.value)
    assert "[redacted]" in str(caught.value)


async def test_unreachable_server_is_unavailable():
    # A port that was just free and is now closed refuses connections.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    p = OpenAIProvider(api_key=KEY, base_url=f"http://127.0.0.1:{port}/v1", max_retries=1,
                       max_retry_wait_s=0.01)
    try:
        with pytest.raises(ModelUnavailable) as caught:
            await collect(p, ask())
    finally:
        await p.aclose()
    assert caught.value.status_code is None


def test_hosted_provider_needs_a_key():
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIProvider(api_key=None, base_url=None)


# --- compatible servers ------------------------------------------------------------------------


async def test_compatible_server_without_key_or_usage():
    local = FakeOpenAI(api_key=None, reject_max_tokens=False, send_usage=False)
    await local.start()
    p = OpenAIProvider(api_key=None, base_url=local.base_url, compatible=True)
    try:
        local.script(ScriptedReply(text="Hi from llama."))
        done = done_of(await collect(p, ask(model="llama3.1:8b", max_tokens=99)))
    finally:
        await p.aclose()
        await local.stop()
    assert done.message.text == "Hi from llama."
    assert done.usage == Usage()
    assert done.model == "llama3.1:8b"
    [sent] = local.chat_requests
    assert sent.headers["Authorization"] == f"Bearer {PLACEHOLDER_API_KEY}"
    assert sent.body["max_tokens"] == 99 and "max_completion_tokens" not in sent.body


async def test_fake_rejects_max_tokens_like_newer_openai_models(fake):
    # Why the hosted provider must send max_completion_tokens: the same request with max_tokens fails.
    p = OpenAIProvider(api_key=KEY, base_url=fake.base_url, compatible=True)
    try:
        with pytest.raises(ModelRejected, match="max_completion_tokens"):
            await collect(p, ask())
    finally:
        await p.aclose()


async def test_fake_in_a_thread_and_non_streaming_shape():
    server = FakeOpenAI(api_key=KEY)
    base_url = server.start_in_thread()
    client = openai.AsyncOpenAI(api_key=KEY, base_url=base_url, max_retries=0)
    try:
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        models = await client.models.list()
        assert [m.id for m in models.data] == ["gpt-4o-mini"]
        server.script(ScriptedReply(text="plain", tool_calls=[FakeToolCall("get_time", {"zone": "UTC"}, id="c1")],
                                    usage=FakeUsage(10, 5, 2)))
        completion = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], max_completion_tokens=10)
        choice = completion.choices[0]
        assert choice.message.content == "plain" and choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls[0].function.arguments == '{"zone": "UTC"}'
        assert completion.usage.prompt_tokens_details.cached_tokens == 2
    finally:
        await client.close()
        server.stop_thread()


# --- provider selection ------------------------------------------------------------------------


@pytest.fixture
def settings_env(monkeypatch, tmp_path):
    """Settings from explicit values only: no stray environment variables or .env file."""
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                 "THREADBOT_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)

    def make(**values: str) -> Settings:
        return Settings(**values)

    return make


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4.1-mini", "o1", "o3-mini", "o4-mini", "chatgpt-4o-latest"])
async def test_provider_for_openai_models(settings_env, model):
    provider, bare = provider_for(settings_env(THREADBOT_MODEL=model, OPENAI_API_KEY="sk-x"))
    try:
        assert isinstance(provider, OpenAIProvider)
        assert provider.name == "openai" and not provider.compatible
        assert bare == model
    finally:
        await provider.aclose()


async def test_provider_for_compatible_server(settings_env, fake):
    local = FakeOpenAI(api_key=None, reject_max_tokens=False)
    await local.start()
    provider, bare = provider_for(settings_env(THREADBOT_MODEL="openai:qwen2.5:7b", OPENAI_BASE_URL=local.base_url))
    try:
        assert isinstance(provider, OpenAIProvider) and provider.compatible
        assert bare == "qwen2.5:7b"
        done = done_of(await collect(provider, ask(model=bare)))
        assert done.message.text == "Hello from the fake model."
        assert local.chat_requests[0].body["model"] == "qwen2.5:7b"
    finally:
        await provider.aclose()
        await local.stop()


async def test_provider_for_claude(settings_env):
    anthropic_module = pytest.importorskip("bot.llm.anthropic")
    provider, bare = provider_for(settings_env(THREADBOT_MODEL="claude-sonnet-4-6", ANTHROPIC_API_KEY="sk-ant-x"))
    try:
        assert isinstance(provider, anthropic_module.AnthropicProvider)
        assert bare == "claude-sonnet-4-6"
    finally:
        await provider.aclose()


@pytest.mark.parametrize("values, names", [
    ({"THREADBOT_MODEL": "claude-sonnet-4-6"}, ["ANTHROPIC_API_KEY"]),
    ({"THREADBOT_MODEL": "gpt-4o"}, ["OPENAI_API_KEY"]),
    ({"THREADBOT_MODEL": "openai:llama3.1"}, ["OPENAI_BASE_URL"]),
    ({"THREADBOT_MODEL": "openai:", "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}, ["THREADBOT_MODEL"]),
    ({"THREADBOT_MODEL": "llama3.1", "OPENAI_API_KEY": "sk-x"}, ["THREADBOT_MODEL", "openai:<model>", "claude-"]),
])
def test_provider_for_errors_name_the_setting(settings_env, values, names):
    with pytest.raises(ConfigError) as caught:
        provider_for(settings_env(**values))
    for name in names:
        assert name in str(caught.value)
