"""Tools an MCP server adds during a turn (tools/list_changed) are offered from the next model call on,
and each request's token estimate counts exactly the tools that request sends."""
from __future__ import annotations

import aiohttp
import pytest

from bot.config import load_settings
from bot.conversation.agent import Agent
from bot.conversation.transcript import Counted, Transcript
from bot.llm import provider_for
from bot.llm.tokens import count_message_tokens, count_text_tokens, count_tools_tokens
from bot.messages import Message, ModelRequest, TextBlock
from bot.store.sqlite import SqliteStore
from tests.fakes.anthropic import DEFAULT_API_KEY, FakeAnthropic, Reply
from tests.fakes.mcp_servers import stdio_entry
from tools.context import ToolContext
from tools.mcp import MCPManager, parse_servers
from tools.registry import Registry

pytestmark = pytest.mark.timeout(60)


class Sink:
    def append(self, text: str) -> None: ...
    def tools_started(self, tool_uses) -> None: ...
    def separate(self) -> None: ...


async def test_tools_added_mid_turn_are_sent_next_and_counted_in_the_estimate(tmp_path) -> None:
    async with FakeAnthropic() as model, aiohttp.ClientSession() as http:
        settings = load_settings(ANTHROPIC_API_KEY=DEFAULT_API_KEY, ANTHROPIC_BASE_URL=model.base_url,
                                 THREADBOT_DB=str(tmp_path / "bot.db"))
        provider, model_id = provider_for(settings)
        store = SqliteStore(settings.db_path)
        servers = parse_servers({"mcpServers": {"notes": stdio_entry(tools=["echo", "grow", "extra"])}}, {})
        try:
            async with MCPManager(servers, start_timeout_s=8) as mcp:
                registry = Registry()
                registry.attach_mcp(mcp)
                agent = Agent(registry, max_rounds=4, tool_timeout_s=10, max_tokens=256, system_prompt="Be brief.",
                              model=model_id)
                sent: list[ModelRequest] = []

                def stream(request: ModelRequest):
                    sent.append(request)
                    return provider.stream(request)

                question = Message("user", [TextBlock("grow, then use the new tool")])
                conversation = await store.conversation_id(team_id="T", channel_id="C", thread_ts="1.0", user_id="U")
                await store.append_messages(conversation, [question])
                transcript = Transcript(store, conversation, [Counted(question, count_message_tokens(question))])
                ctx = ToolContext(user_id="U", team_id="T", channel_id="C", thread_ts="1.0", store=store, http=http,
                                  settings=settings, call_model=None)  # type: ignore[arg-type]
                model.add(Reply.tool("notes_grow", {}, id="toolu_grow"),
                          Reply.tool("notes_extra", {}, id="toolu_extra"), Reply.text("Done."))
                async def approve(request) -> bool:  # grow acts (no readOnlyHint): the user says yes
                    return True

                outcome = await agent.run(transcript, ctx=ctx, reply=Sink(), stream=stream, approve=approve)
        finally:
            await provider.aclose()
            await store.close()
    assert outcome.stop_reason == "end_turn" and len(sent) == 3
    assert [t.name for t in sent[0].tools] == ["notes_echo", "notes_grow"]
    assert [t.name for t in sent[1].tools] == ["notes_echo", "notes_extra", "notes_grow"]
    assert [t["name"] for t in model.requests[1]["tools"]] == ["notes_echo", "notes_extra", "notes_grow"]
    # The added tool was offered, so the model's call to it ran.
    results = [b for m in sent[2].messages for b in m.content if getattr(b, "tool_use_id", None) == "toolu_extra"]
    assert results and results[0].content.startswith("extra") and not results[0].is_error
    for request in sent:
        messages = sum(count_message_tokens(m) for m in request.messages)
        assert request.estimated_input_tokens == (count_text_tokens(request.system) + count_tools_tokens(request.tools)
                                                  + messages)
