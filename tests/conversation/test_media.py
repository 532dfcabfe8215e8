"""Images with a turn: to the model, kept by content address for follow-ups, capped, refused in one sentence,
given way in a full window, and answered as text by a model that takes no images."""
from __future__ import annotations

import base64
import hashlib
import io
from contextlib import AsyncExitStack
from dataclasses import replace

import aiohttp
import pytest
from PIL import Image
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import load_settings
from bot.conversation import Conversations
from bot.conversation.context_window import images_give_way
from bot.conversation.media import Attachment
from bot.conversation.transcript import Counted
from bot.llm import provider_for
from bot.llm.tokens import count_message_tokens
from bot.messages import ImageBlock, Message, TextBlock
from bot.slack.edit_budget import EditBudget
from bot.store.sqlite import SqliteStore
from tests.conversation.test_agent import Rig, make_rig  # noqa: F401  (the fixture)
from tests.fakes import slack as fs
from tests.fakes.media import OPENAI_NO_VISION
from tests.fakes.open_meteo import FakeOpenMeteo
from tests.fakes.openai import FakeOpenAI
from tests.fakes.slack import FakeSlack
from tools.registry import Registry

KEY = "sk-test-fake-key-1234"


def png(width: int = 320, height: int = 200, shade: int = 0) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (shade, 90, 200)).save(out, "PNG")
    return out.getvalue()


async def ask_with(rig: Rig, text: str, attachments: list[Attachment], *, thread_ts: str | None = None):
    turn = replace(rig.turn(text, thread_ts=thread_ts), attachments=attachments)
    reply = rig.reply_for(turn)
    await rig.conversations.handle(turn, reply)
    return turn, rig.slack.message(turn.channel_id, reply.parts[0].ts)


def images_in(request: dict) -> list[dict]:
    return [b for m in request["messages"] for b in m["content"] if isinstance(b, dict) and b["type"] == "image"]


async def test_an_image_reaches_the_model_and_a_follow_up_still_sees_it(make_rig):
    rig = await make_rig()
    turn, _ = await ask_with(rig, "what error is in this screenshot?", [Attachment("error.png", "image/png", png())])
    [sent] = images_in(rig.model.requests[-1])
    data = base64.b64decode(sent["source"]["data"])
    assert sent["source"]["media_type"] == "image/png" and Image.open(io.BytesIO(data)).size == (320, 200)

    # History names the image by content address; its bytes live in the store, not in the message row.
    [stored_user, _] = await rig.history(turn)
    [block] = stored_user.images
    assert block.sha256 == hashlib.sha256(data).hexdigest() and block.data is None
    assert (await rig.store.get_blobs([block.sha256]))[block.sha256] == data

    await rig.ask("and the second error in that screenshot?", thread_ts=turn.thread_ts)
    [again] = images_in(rig.model.requests[-1])
    assert base64.b64decode(again["source"]["data"]) == data


async def test_more_images_than_the_limit_are_named_not_dropped_silently(make_rig):
    rig = await make_rig(THREADBOT_MAX_IMAGES="2")
    files = [Attachment(f"{n}.png", "image/png", png(shade=i * 20)) for i, n in enumerate("abcde")]
    _, message = await ask_with(rig, "compare these", files)
    assert len(images_in(rig.model.requests[-1])) == 2
    assert "I look at 2 images per message, so I left out c.png, d.png, e.png." in message.text


async def test_an_unreadable_image_gets_one_sentence_and_the_rest_is_answered(make_rig):
    rig = await make_rig()
    files = [Attachment("fake.png", "image/png", b"this is text, not a picture"),
             Attachment("scan.tiff", "image/tiff", b"II*\x00" + b"\x00" * 64),
             Attachment("ok.png", "image/png", png())]
    _, message = await ask_with(rig, "what do you see?", files)
    assert len(images_in(rig.model.requests[-1])) == 1
    assert "fake.png is labelled as an image, but its contents are not an image I recognise." in message.text
    assert "scan.tiff is a TIFF image, which I can't read" in message.text
    assert message.text.startswith("echo: ")  # the question was still answered


def test_older_images_give_way_to_their_name_before_any_turn_is_dropped():
    big = ImageBlock(name="old.png", media_type="image/png", sha256="a", width=1092, height=1092, data=b"x")
    thread = [Message("user", [big, TextBlock("what is this?")]), Message("assistant", [TextBlock("A chart.")]),
              Message("user", [replace(big, name="new.png", sha256="b"), TextBlock("and this?")])]
    counts = [count_message_tokens(m) for m in thread]
    budget = sum(counts) - 100  # one image too many
    kept = images_give_way([Counted(m, c) for m, c in zip(thread, counts)], budget)
    assert kept[0].content[0] == TextBlock("[image: old.png]\n")
    assert kept[0].content[1] == TextBlock("what is this?")
    assert kept[2].message.images  # the newest turn keeps its image
    assert images_give_way(thread, sum(counts)) == thread  # fits: nothing changes


@pytest.fixture
async def openai_rig(tmp_path):
    async with AsyncExitStack() as stack:
        slack = await stack.enter_async_context(FakeSlack())
        weather = await stack.enter_async_context(FakeOpenMeteo())

        async def build(model: str, *, registry: Registry | None = None, **fake_options) -> tuple[Rig, FakeOpenAI]:
            fake = FakeOpenAI(api_key=KEY, reject_max_tokens=not model.startswith("openai:"), **fake_options)
            await fake.start()
            stack.push_async_callback(fake.stop)
            settings = load_settings(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=fake.base_url, THREADBOT_MODEL=model,
                                     THREADBOT_DB=str(tmp_path / "bot.db"), THREADBOT_USER_RPM="1000")
            provider, model_id = provider_for(settings)
            stack.push_async_callback(provider.aclose)
            store = SqliteStore(settings.db_path)
            stack.push_async_callback(store.close)
            http = await stack.enter_async_context(aiohttp.ClientSession())
            conversations = Conversations(settings=settings, store=store, provider=provider, model=model_id,
                                          registry=registry or Registry([]), http=http)
            rig = Rig(model=None, slack=slack, weather=weather, store=store,  # type: ignore[arg-type]
                      conversations=conversations, client=AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url),
                      budget=EditBudget())
            return rig, fake

        yield build


async def test_a_model_the_catalog_knows_without_vision_gets_the_image_names(openai_rig):
    rig, fake = await openai_rig("openai:llama3.1")
    _, message = await ask_with(rig, "what is this?", [Attachment("chart.png", "image/png", png())])
    parts = fake.chat_requests[-1].messages[-1]["content"]
    assert parts == "[image: chart.png]\nwhat is this?"  # no image goes to a model that cannot read it
    assert "This model can't read images, so I answered from the text alone." in message.text


async def test_a_400_saying_no_images_is_one_sentence_and_the_text_is_still_answered(openai_rig):
    rig, fake = await openai_rig("gpt-4o", rejects_images=OPENAI_NO_VISION)
    _, message = await ask_with(rig, "what is this?", [Attachment("chart.png", "image/png", png())])
    first, second = fake.chat_requests
    assert first.messages[-1]["content"][0]["type"] == "image_url"
    assert second.messages[-1]["content"] == "[image: chart.png]\nwhat is this?"
    assert "Hello from the fake model." in message.text
    assert "This model can't read images, so I answered from the text alone." in message.text


async def test_a_400_saying_no_images_after_a_tool_round_goes_on_without_running_the_tool_again(openai_rig):
    """The tool's image (a real PNG from a real MCP server) is refused by the model mid-turn."""
    from tests.fakes.mcp_servers import stdio_entry
    from tests.fakes.openai import FakeToolCall, ScriptedReply
    from tools.mcp import MCPManager, parse_servers

    async with MCPManager(parse_servers({"mcpServers": {"notes": stdio_entry()}}, {}), start_timeout_s=8) as mcp:
        registry = Registry([])
        registry.attach_mcp(mcp)
        rig, fake = await openai_rig("gpt-4o", registry=registry, rejects_images=OPENAI_NO_VISION)
        fake.script(ScriptedReply(tool_calls=[FakeToolCall("notes_chart", {"width": 40, "height": 20})]),
                    ScriptedReply(text="A gradient."))
        _, message = await ask_with(rig, "what does the chart tool show?", [])
    first, refused, last = fake.chat_requests
    assert [m["role"] for m in first.messages][-1] == "user"
    assert any(part.get("type") == "image_url" for m in refused.messages if isinstance(m.get("content"), list)
               for part in m["content"])  # the tool's image went to a model that said no
    # Going on from the tool round: its result is there as text, the tool was called once, nothing asked twice.
    tool_messages = [m for m in last.messages if m["role"] == "tool"]
    assert len(tool_messages) == 1 and "[image: notes_chart-1]" in str(tool_messages[0]["content"])
    assert sum(bool(m.get("tool_calls")) for m in last.messages) == 1
    assert "A gradient." in message.text
    assert "This model can't read images, so I answered from the text alone." in message.text


def pdf_with(text: str) -> bytes:
    """A one-page PDF with real text (drawn by hand: pypdf writes no text itself)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(width=300, height=200)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject(
        {NameObject("/F1"): writer._add_object(font)})})
    stream = DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode())
    page[NameObject("/Contents")] = writer._add_object(stream)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


async def test_a_document_shared_with_a_question_is_given_whole_for_that_turn_only(make_rig):
    rig = await make_rig()
    report = Attachment("report.pdf", "application/pdf", pdf_with("Revenue grew 12 percent in Q3."))
    notes = Attachment("notes.md", "text/markdown", b"# Notes\n\nShip on Friday.\n")
    turn = replace(rig.turn("summarise these"), documents=[report, notes])
    reply = rig.reply_for(turn)
    await rig.conversations.handle(turn, reply)
    content = rig.model.requests[-1]["messages"][-1]["content"]
    assert content[0]["type"] == "document" and content[0]["source"]["media_type"] == "application/pdf"
    assert content[1]["source"] == {"type": "text", "media_type": "text/plain", "data": "# Notes\n\nShip on Friday."}
    assert content[2] == {"type": "text", "text": "summarise these"}
    [stored_user, _] = await rig.history(turn)
    assert stored_user.content == [TextBlock("summarise these")]  # the knowledge base keeps the file


async def test_a_document_too_long_to_give_whole_says_so(make_rig):
    rig = await make_rig()
    long = Attachment("book.txt", "text/plain", ("word " * 400_000).encode())
    turn = replace(rig.turn("summarise this"), documents=[long])
    reply = rig.reply_for(turn)
    await rig.conversations.handle(turn, reply)
    assert not [b for b in rig.model.requests[-1]["messages"][-1]["content"] if b["type"] == "document"]
    message = rig.slack.message(turn.channel_id, reply.parts[0].ts)
    assert "book.txt is too long to read whole, so I answered from its most relevant parts." in message.text


def test_a_long_thread_of_images_sends_no_more_than_one_request_may_carry():
    from bot.conversation.context_window import MAX_REQUEST_IMAGE_BYTES, MAX_REQUEST_IMAGES

    def turn(n: int, size: int = 10) -> list[Message]:
        image = ImageBlock(name=f"p{n}.png", media_type="image/png", sha256=str(n), width=8, height=8, data=b"x" * size)
        return [Message("user", [image, TextBlock(f"photo {n}?")]), Message("assistant", [TextBlock("A photo.")])]

    # Small images, plenty of tokens: the count still caps what goes (the provider refuses more than 100).
    thread = [m for n in range(MAX_REQUEST_IMAGES + 10) for m in turn(n)] + [turn(999)[0]]
    kept = images_give_way(thread, 10**9)
    sent = [m for m in kept if m.images]
    assert len(sent) == MAX_REQUEST_IMAGES and sent[-1].images[0].name == "p999.png"
    assert kept[0].content[0] == TextBlock("[image: p0.png]\n")  # the oldest gave way first
    # Large ones: the bytes cap (a request has a size limit too).
    big = MAX_REQUEST_IMAGE_BYTES // 4 + 1
    thread = [m for n in range(6) for m in turn(n, big)] + [turn(999, big)[0]]
    sent = [m for m in images_give_way(thread, 10**9) if m.images]
    assert sum(len(m.images[0].data) for m in sent) <= MAX_REQUEST_IMAGE_BYTES and len(sent) == 3
    assert sent[-1].images[0].name == "p999.png"


async def test_a_tools_images_get_their_bytes_back_or_give_way_to_text(tmp_path) -> None:
    from bot.conversation.media import with_image_data, without_images
    from bot.conversation.transcript import Transcript
    from bot.messages import ToolResultBlock, ToolUseBlock

    store = SqliteStore(tmp_path / "t.db")
    try:
        data = b"\x89PNG fake bytes"
        sha = hashlib.sha256(data).hexdigest()
        await store.put_blob(sha, "image/png", data)
        image = ImageBlock("web_shot-1", "image/png", sha, 10, 10)
        result = Message("user", [ToolResultBlock("toolu_1", "the page", images=(image,))])
        [back] = await with_image_data([result], store)
        assert back.images[0].data == data and back.content[0].content == "the page"
        text_only = without_images(back)
        assert text_only.images == [] and text_only.content[0].content == "the page\n[image: web_shot-1]"
        # A model without vision: the transcript keeps the image in the store, gives the model its text.
        conversation = await store.conversation_id(team_id="T", channel_id="C", thread_ts="1.0", user_id="U")
        transcript = Transcript(store, conversation, [], vision=False)
        await transcript.record([Message("assistant", [ToolUseBlock("toolu_1", "web_shot", {})]), back])
        assert transcript.messages[1].images == [] and "[image: web_shot-1]" in transcript.messages[1].content[0].content
        stored = await store.history(conversation)
        assert stored[1].message.images == [image]
    finally:
        await store.close()
