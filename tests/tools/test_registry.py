"""The tool registry: discovery, derived schemas, argument validation, error results, status lines."""
from __future__ import annotations

import asyncio
import json
import textwrap
from dataclasses import dataclass
from typing import Annotated, Literal

import aiohttp
import jsonschema
import pytest
from pydantic import BaseModel, Field

from bot.config import load_settings
from bot.errors import ModelOverloaded
from bot.messages import ModelRequest, ToolResultBlock, ToolUseBlock
from bot.store.sqlite import SqliteStore
from tools.context import ToolContext
from tools.registry import Registry, Tool, ToolError, parse_docstring, serialize_result, tool


async def _no_model(request: ModelRequest):  # the registry tests never call the model
    raise AssertionError("unexpected model call")


@pytest.fixture
async def ctx(tmp_path):
    store = SqliteStore(tmp_path / "t.db")
    async with aiohttp.ClientSession() as http:
        yield ToolContext(
            user_id="U1", team_id="T1", channel_id="C1", thread_ts="1.0", store=store, http=http,
            settings=load_settings(), call_model=_no_model,
        )
    await store.close()


# --- tools used by these tests ----------------------------------------------------------------


@tool(status="Greeting {name} in {language}…")
async def greet_person(ctx: ToolContext, name: str, times: Annotated[int, Field(ge=1, le=5)] = 1,
                       language: Literal["en", "pt"] = "en") -> str:
    """Greet someone by name.

    Args:
        name: Who to greet.
        times: How many greetings,
            at most five.
        language: Language of the greeting.

    Returns:
        The greeting.
    """
    word = "Hello" if language == "en" else "Olá"
    return " ".join([f"{word}, {name}!"] * times) + f" ({ctx.user_id})"


@tool
async def explode_now(ctx: ToolContext, reason: str) -> str:
    """Always raises.

    Args:
        reason: What to put in the exception.
    """
    raise RuntimeError(reason)


@tool
async def refuse_politely(ctx: ToolContext) -> str:
    """Raises a ToolError."""
    raise ToolError("No place called 'Atlantis' found.")


@tool
async def overload_model(ctx: ToolContext) -> str:
    """Raises one of the project's own errors."""
    raise ModelOverloaded("529 from upstream")


class Point(BaseModel):
    x: int
    label: str | None = None


@dataclass
class Pair:
    left: str
    right: int


@tool
async def give_structure(ctx: ToolContext, shape: Literal["model", "dataclass", "dict", "none"]) -> object:
    """Returns structured values.

    Args:
        shape: Which kind of value to return.
    """
    return {"model": Point(x=1), "dataclass": Pair("a", 2), "dict": {"ok": True, "n": [1, 2]}, "none": None}[shape]


SLOW_STATE: dict[str, bool] = {}


@tool
async def wait_forever(ctx: ToolContext) -> str:
    """Sleeps until cancelled."""
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        SLOW_STATE["cancelled"] = True
        raise
    return "never"


@pytest.fixture
def registry() -> Registry:
    return Registry([greet_person, explode_now, refuse_politely, overload_model, give_structure, wait_forever])


def use(tool_name: str, /, **input: object) -> ToolUseBlock:
    return ToolUseBlock(id="toolu_1", name=tool_name, input=dict(input))


# --- schema derivation ------------------------------------------------------------------------


def test_schema_is_derived_from_signature_and_docstring(registry: Registry) -> None:
    spec = next(s for s in registry.specs() if s.name == "greet_person")
    assert spec.description == "Greet someone by name."
    assert spec.input_schema == {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "description": "Who to greet."},
            "times": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1,
                      "description": "How many greetings, at most five."},
            "language": {"type": "string", "enum": ["en", "pt"], "default": "en",
                         "description": "Language of the greeting."},
        },
        "required": ["name"],
    }
    jsonschema.Draft202012Validator.check_schema(spec.input_schema)


def test_specs_are_sorted_and_context_is_never_in_a_schema(registry: Registry) -> None:
    names = [s.name for s in registry.specs()]
    assert names == sorted(names) == registry.names
    for spec in registry.specs():
        assert "ctx" not in spec.input_schema["properties"]
        assert "title" not in spec.input_schema


def test_parse_docstring_google_style() -> None:
    summary, args = parse_docstring(textwrap.dedent("""
        Do a thing.

        Longer explanation
        on two lines.

        Args:
            first (str): The first
                argument, continued.
            second: The second.

        Raises:
            ValueError: never documented as an argument.
        """))
    assert summary == "Do a thing.\n\nLonger explanation\non two lines."
    assert args == {"first": "The first argument, continued.", "second": "The second."}


def test_discover_picks_up_the_project_tools() -> None:
    registry = Registry.discover()
    assert {"get_weather", "extract_record"} <= set(registry.names)
    assert "registry" not in registry and "ToolContext" not in registry


def test_adding_a_tool_is_one_new_module(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "extra_tools"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "roll_dice.py").write_text(textwrap.dedent('''
        from tools.context import ToolContext
        from tools.registry import tool

        @tool(status="Rolling {sides}-sided dice…")
        async def roll_dice(ctx: ToolContext, sides: int = 6) -> str:
            """Roll a die.

            Args:
                sides: Number of sides.
            """
            return "4"

        async def helper_not_a_tool(ctx: ToolContext) -> str:
            """Not marked."""
            return ""
        '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry.discover("extra_tools")
    assert registry.names == ["roll_dice"]
    assert registry.specs()[0].input_schema["properties"]["sides"] == {
        "type": "integer", "default": 6, "description": "Number of sides."}
    assert registry.status_line("roll_dice", {"sides": 20}) == "Rolling 20-sided dice…"


@pytest.mark.parametrize(
    "source, message",
    [
        ("def sync_tool(ctx: ToolContext) -> str:\n    'Doc.'\n    return ''", "must be an async def"),
        ("async def no_ctx(place: str) -> str:\n    'Doc.'\n    return ''", "first parameter must be `ctx: ToolContext`"),
        ("async def no_doc(ctx: ToolContext) -> str:\n    return ''", "needs a docstring"),
        ("async def untyped(ctx: ToolContext, x) -> str:\n    'Doc.'\n    return ''", "needs a type annotation"),
        ("async def star(ctx: ToolContext, *xs: int) -> str:\n    'Doc.'\n    return ''", "plain named parameter"),
    ],
)
def test_malformed_tools_are_rejected_at_registration(source: str, message: str) -> None:
    namespace: dict[str, object] = {"ToolContext": ToolContext}
    exec(source, namespace)
    function = next(v for k, v in namespace.items() if callable(v) and k != "ToolContext")
    with pytest.raises(TypeError, match=message):
        Tool.from_function(function)  # type: ignore[arg-type]


def test_two_tools_with_one_name_are_rejected(registry: Registry) -> None:
    with pytest.raises(ValueError, match="two tools are named greet_person"):
        registry.add(greet_person)


# --- running ----------------------------------------------------------------------------------


async def test_run_validates_and_calls_the_tool_with_context(registry: Registry, ctx: ToolContext) -> None:
    result = await registry.run(ctx, use("greet_person", name="Ana", times="2", language="pt"))
    assert result == ToolResultBlock(tool_use_id="toolu_1", content="Olá, Ana! Olá, Ana! (U1)", is_error=False)


async def test_unknown_tool_is_an_error_result(registry: Registry, ctx: ToolContext) -> None:
    result = await registry.run(ctx, use("launch_rockets"))
    assert result.is_error and result.tool_use_id == "toolu_1"
    assert result.content.startswith("Unknown tool 'launch_rockets'. Available tools: ")
    assert "greet_person" in result.content


async def test_invalid_arguments_name_each_field_and_reason(registry: Registry, ctx: ToolContext) -> None:
    result = await registry.run(ctx, use("greet_person", times=9, language="fr", colour="red"))
    assert result.is_error
    assert result.content.startswith("Invalid arguments for greet_person: ")
    assert "name: Field required" in result.content
    assert "times: Input should be less than or equal to 5" in result.content
    assert "language: Input should be 'en' or 'pt'" in result.content
    assert "colour: unknown field (expected one of: name, times, language)" in result.content
    assert result.content.endswith("Fix them and call again.")
    assert "Traceback" not in result.content


async def test_wrong_type_is_reported(registry: Registry, ctx: ToolContext) -> None:
    result = await registry.run(ctx, use("greet_person", name=["Ana"]))
    assert result.is_error
    assert "name: Input should be a valid string" in result.content


async def test_exception_in_tool_becomes_error_result(registry: Registry, ctx: ToolContext, caplog) -> None:
    result = await registry.run(ctx, use("explode_now", reason="disk on fire\nsecond line"))
    assert result.is_error
    assert result.content == "explode_now failed unexpectedly (RuntimeError: disk on fire)."
    assert any("explode_now" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_tool_error_message_is_the_result(registry: Registry, ctx: ToolContext) -> None:
    result = await registry.run(ctx, use("refuse_politely"))
    assert result == ToolResultBlock("toolu_1", "No place called 'Atlantis' found.", is_error=True)


async def test_project_errors_are_results_with_their_user_message(registry: Registry, ctx: ToolContext) -> None:
    result = await registry.run(ctx, use("overload_model"))
    assert result.is_error
    assert result.content == "overload_model failed: The model is overloaded right now. Please try again in a minute."


@pytest.mark.parametrize(
    "shape, expected",
    [
        ("model", {"x": 1}),
        ("dataclass", {"left": "a", "right": 2}),
        ("dict", {"ok": True, "n": [1, 2]}),
    ],
)
async def test_structured_results_are_json(registry: Registry, ctx: ToolContext, shape: str, expected: dict) -> None:
    result = await registry.run(ctx, use("give_structure", shape=shape))
    assert not result.is_error
    assert json.loads(result.content) == expected


def test_serialize_result_plain_values() -> None:
    assert serialize_result("text") == "text"
    assert serialize_result(None) == "Done."
    assert serialize_result(Point(x=3, label="p")) == '{"x":3,"label":"p"}'


async def test_run_is_cancellation_safe(registry: Registry, ctx: ToolContext) -> None:
    SLOW_STATE.clear()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(registry.run(ctx, use("wait_forever")), timeout=0.05)
    assert SLOW_STATE == {"cancelled": True}


# --- status lines ---------------------------------------------------------------------------


def test_status_line_is_rendered_from_arguments(registry: Registry) -> None:
    assert registry.status_line("greet_person", {"name": "Ana", "language": "pt"}) == "Greeting Ana in pt…"


@pytest.mark.parametrize(
    "name, input",
    [("greet_person", {}), ("greet_person", {"name": "Ana"}), ("greet_person", None),
     ("greet_person", {"name": "", "language": "en"})],
)
def test_status_line_with_missing_arguments_falls_back(registry: Registry, name: str, input) -> None:
    assert registry.status_line(name, input) == "Using greet person…"


def test_status_line_for_unknown_or_unmarked_tools(registry: Registry) -> None:
    assert registry.status_line("launch_rockets", {"x": 1}) == "Using launch rockets…"
    assert registry.status_line("explode_now", {"reason": "x"}) == "Using explode now…"


def test_status_line_values_are_short_single_lines_without_slack_markup(registry: Registry) -> None:
    line = registry.status_line("greet_person", {"name": "<!channel>\nhi", "language": "x" * 200})
    assert line.startswith("Greeting !channel hi in xxx")
    assert "<" not in line and "\n" not in line
    assert len(line) < 100


def test_status_line_survives_a_bad_template() -> None:
    @tool(status="Odd {0} {place.attr}")
    async def odd_template(ctx: ToolContext, place: str) -> str:
        """Odd.

        Args:
            place: Somewhere.
        """
        return place

    registry = Registry([odd_template])
    assert registry.status_line("odd_template", {"place": "Lisbon"}) == "Using odd template…"
