"""The tool registry: finds `@tool` functions, derives their schemas, validates calls and runs them."""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import logging
import pkgutil
import re
import string
import typing
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from bot.errors import ThreadbotError
from bot.messages import ToolResultBlock, ToolSpec, ToolUseBlock
from tools.context import ToolContext
from tools.mcp import MCPManager

log = logging.getLogger(__name__)

ToolFunction = Callable[..., Awaitable[Any]]

_MARK = "__threadbot_tool__"
# Google-style section headers that end the description / the Args section.
_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Returns|Return|Yields|Raises|Examples?|Notes?|Warnings?|See Also)\s*:\s*$"
)
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_STATUS_VALUE_MAX = 60
WORKING = "is working on it…"


class ToolError(Exception):
    """A tool failed in a way the model should hear about; the message is the whole tool_result."""


@dataclass(frozen=True)
class _ToolMark:
    status: str | None
    assistant_status: str | None
    acts: bool = False


def tool(func: ToolFunction | None = None, *, status: str | None = None,
         assistant_status: str | None = None, acts: bool = False) -> Any:
    """Mark an `async def verb_noun(ctx: ToolContext, …)` as a tool; usable as `@tool` or `@tool(status=…)`.

    `status` is the line shown to the user while the tool runs, formatted with the call's arguments,
    e.g. "Checking the forecast for {place}…". `assistant_status` is what Slack's assistant panel says
    after the app's name while it runs, e.g. "is checking the forecast…". `acts=True` says the tool
    changes something outside the bot: each call waits for the asking user's approval first.
    """

    def mark(fn: ToolFunction) -> ToolFunction:
        setattr(fn, _MARK, _ToolMark(status=status, assistant_status=assistant_status, acts=acts))
        return fn

    return mark(func) if func is not None else mark


@dataclass(frozen=True)
class Tool:
    """One registered tool: the function, the pydantic model of its arguments and its spec."""

    name: str
    function: ToolFunction
    arguments: type[BaseModel]
    spec: ToolSpec
    status: str | None = None
    assistant_status: str | None = None
    acts: bool = False

    @classmethod
    def from_function(cls, function: ToolFunction, *, status: str | None = None,
                      assistant_status: str | None = None, acts: bool = False) -> "Tool":
        if not inspect.iscoroutinefunction(function):
            raise TypeError(f"tool {function.__qualname__} must be an async def")
        name = function.__name__
        summary, arg_docs = parse_docstring(inspect.getdoc(function) or "")
        if not summary:
            raise TypeError(f"tool {name} needs a docstring: it is the description the model reads")
        hints = typing.get_type_hints(function, include_extras=True)
        params = list(inspect.signature(function).parameters.values())
        if not params or hints.get(params[0].name) is not ToolContext:
            raise TypeError(f"tool {name}: the first parameter must be `ctx: ToolContext`")
        fields: dict[str, Any] = {}
        for param in params[1:]:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
                raise TypeError(f"tool {name}: parameter {param.name} must be a plain named parameter")
            if param.name not in hints:
                raise TypeError(f"tool {name}: parameter {param.name} needs a type annotation")
            annotation: Any = hints[param.name]
            if param.name in arg_docs:
                # Field metadata merges with any Field(...) the signature already carries.
                annotation = typing.Annotated[annotation, Field(description=arg_docs[param.name])]
            default = ... if param.default is inspect.Parameter.empty else param.default
            fields[param.name] = (annotation, default)
        arguments = create_model(  # type: ignore[call-overload]
            f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        schema = clean_schema(arguments.model_json_schema())
        return cls(
            name=name,
            function=function,
            arguments=arguments,
            spec=ToolSpec(name=name, description=summary, input_schema=schema),
            status=status,
            assistant_status=assistant_status,
            acts=acts,
        )


class Registry:
    """The tools the agent offers the model, by name."""

    def __init__(self, tools: Iterable[Tool | ToolFunction] = ()):
        self._tools: dict[str, Tool] = {}
        self._mcp: MCPManager | None = None
        for item in tools:
            self.add(item)

    @classmethod
    def discover(cls, package: str = "tools") -> "Registry":
        """Import every module of `package` and register each function marked with `@tool`."""
        registry = cls()
        pkg = importlib.import_module(package)
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
            if info.name.startswith("_") or info.ispkg:
                continue
            # An import error here is a broken tool: fail at start-up rather than lose it silently.
            module = importlib.import_module(f"{package}.{info.name}")
            for _, obj in inspect.getmembers(module, inspect.isfunction):
                if getattr(obj, "__module__", None) == module.__name__ and hasattr(obj, _MARK):
                    registry.add(obj)
        return registry

    def add(self, item: Tool | ToolFunction) -> Tool:
        if not isinstance(item, Tool):
            mark = getattr(item, _MARK, None)
            item = Tool.from_function(item, status=mark.status if mark else None,
                                      assistant_status=mark.assistant_status if mark else None,
                                      acts=mark.acts if mark else False)
        if item.name in self._tools:
            raise ValueError(f"two tools are named {item.name}")
        self._tools[item.name] = item
        return item

    def attach_mcp(self, manager: MCPManager) -> None:
        """Offer the MCP servers' tools too (their names never clash with a built-in's: see tools.mcp.names)."""
        self._mcp = manager

    def __contains__(self, name: object) -> bool:
        if name in self._tools:
            return True
        return self._mcp is not None and isinstance(name, str) and self._mcp.get(name) is not None

    def __len__(self) -> int:
        return len(self.names)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    @property
    def names(self) -> list[str]:
        mcp = [t.name for t in self._mcp.tools if t.name not in self._tools] if self._mcp is not None else []
        return sorted([*self._tools, *mcp])

    @property
    def servers(self) -> list[str]:
        """The configured MCP servers (running or not): naming one offers all of its tools."""
        return sorted(status.name for status in self._mcp.status()) if self._mcp is not None else []

    def select(self, names: Iterable[str] | None = None) -> list[str]:
        """The tool names a selection offers, in `names`' stable order: each item a built-in or MCP tool
        name, or an MCP server's name for every tool it has now; None offers every tool."""
        if names is None:
            return self.names
        wanted = set(names)

        def chosen(name: str) -> bool:
            if name in wanted:
                return True
            mcp_tool = self._mcp.get(name) if self._mcp is not None and name not in self._tools else None
            return mcp_tool is not None and mcp_tool.server in wanted

        return [name for name in self.names if chosen(name)]

    def specs(self, names: Iterable[str] | None = None) -> list[ToolSpec]:
        """The tools as the model sees them (all, or a selection: see select), in a stable order (keeps
        the prompt cache warm)."""
        return [self._spec(name) for name in self.select(names)]

    def _spec(self, name: str) -> ToolSpec:
        found = self._tools.get(name)
        if found is not None:
            return found.spec
        assert self._mcp is not None
        mcp_tool = self._mcp.get(name)
        assert mcp_tool is not None
        return mcp_tool.spec

    def acts(self, name: str) -> bool:
        """Whether a call to `name` changes something outside the bot, so it needs the user's approval."""
        found = self._tools.get(name)
        if found is not None:
            return found.acts
        mcp_tool = self._mcp.get(name) if self._mcp is not None else None
        return mcp_tool.acts if mcp_tool is not None else False

    def status_line(self, name: str, input: dict[str, Any] | None) -> str:
        """The line shown while `name` runs, filled from its arguments; never raises."""
        found = self._tools.get(name)
        fallback = f"Using {name.replace('_', ' ')}…"
        if found is None or not found.status:
            return fallback
        values = {key: _status_value(value) for key, value in (input or {}).items()}
        try:
            wanted = [field for _, field, _, _ in string.Formatter().parse(found.status) if field]
            if any(not values.get(field) for field in wanted):
                return fallback
            return found.status.format_map(values)
        except (ValueError, KeyError, IndexError, AttributeError, TypeError):
            return fallback

    def assistant_status(self, name: str) -> str:
        """What the assistant panel says while `name` runs ("is checking the forecast…")."""
        found = self._tools.get(name)
        if found is None:
            return WORKING  # a tool the model made up: it gets an error result in a moment
        return found.assistant_status or f"is using {name.replace('_', ' ')}…"

    async def run(self, ctx: ToolContext, tool_use: ToolUseBlock) -> ToolResultBlock:
        """Validate the arguments, run the tool, and turn any failure into an error result.

        Cancellation (CancelledError) passes through untouched so the agent's timeout can stop a tool.
        """
        found = self._tools.get(tool_use.name)
        if found is None and self._mcp is not None and self._mcp.get(tool_use.name) is not None:
            return await self._mcp.call(tool_use.name, dict(tool_use.input or {}), tool_use_id=tool_use.id,
                                        timeout=ctx.settings.tool_timeout_s, store=ctx.store)
        if found is None:
            available = ", ".join(self.names) or "none"
            return _error(tool_use, f"Unknown tool {tool_use.name!r}. Available tools: {available}.")
        try:
            arguments = found.arguments.model_validate(tool_use.input or {})
        except ValidationError as exc:
            detail = describe_validation_error(exc, known=list(found.arguments.model_fields))
            return _error(tool_use, f"Invalid arguments for {found.name}: {detail}. Fix them and call again.")
        kwargs = {name: getattr(arguments, name) for name in found.arguments.model_fields}
        try:
            value = await found.function(ctx, **kwargs)
            return ToolResultBlock(tool_use_id=tool_use.id, content=serialize_result(value))
        except ToolError as exc:
            log.info("tool %s (%s) failed: %s", found.name, tool_use.id, exc)
            return _error(tool_use, str(exc) or f"{found.name} failed.")
        except ThreadbotError as exc:
            log.warning("tool %s (%s) stopped: %r", found.name, tool_use.id, exc)
            return _error(tool_use, f"{found.name} failed: {exc.user_message()}")
        except Exception as exc:  # noqa: BLE001 - a broken tool must not break the turn
            log.exception("tool %s (%s) raised", found.name, tool_use.id)
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            detail = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
            return _error(tool_use, f"{found.name} failed unexpectedly ({detail}).")


def _error(tool_use: ToolUseBlock, message: str) -> ToolResultBlock:
    return ToolResultBlock(tool_use_id=tool_use.id, content=message, is_error=True)


def _status_value(value: Any) -> str:
    # Model-chosen text goes into a Slack message: one short line, no <…> that Slack would parse.
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.replace("<", "").replace(">", "").split())
    return text if len(text) <= _STATUS_VALUE_MAX else text[: _STATUS_VALUE_MAX - 1] + "…"


# --- helpers shared with tools ----------------------------------------------------------------


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into (description, {argument: description})."""
    description: list[str] = []
    args: dict[str, list[str]] = {}
    section: str | None = None
    current: str | None = None
    args_indent: int | None = None
    for line in inspect.cleandoc(doc).splitlines():
        header = _SECTION.match(line.strip()) if not line.startswith((" ", "\t")) else None
        if header:
            section = header.group(1).lower()
            current, args_indent = None, None
            continue
        if section is None:
            description.append(line)
        elif section in ("args", "arguments", "parameters", "params") and line.strip():
            indent = len(line) - len(line.lstrip())
            match = _ARG_LINE.match(line.strip())
            if match and (args_indent is None or indent <= args_indent):
                args_indent = indent
                current = match.group(1).lstrip("*")
                args[current] = [match.group(2).strip()]
            elif current is not None:
                args[current].append(line.strip())
    summary = "\n".join(description).strip()
    summary = re.sub(r"\n{3,}", "\n\n", summary)
    return summary, {name: " ".join(p for p in parts if p) for name, parts in args.items()}


def describe_validation_error(exc: ValidationError, *, known: list[str] | None = None, limit: int = 8) -> str:
    """Pydantic's errors as one short line: `field: reason; other.field: reason`."""
    parts: list[str] = []
    for error in exc.errors(include_url=False, include_input=False)[:limit]:
        where = _loc(error.get("loc", ()))
        if error.get("type") == "extra_forbidden":
            reason = "unknown field" + (f" (expected one of: {', '.join(known)})" if known else "")
        else:
            reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {reason}" if where else reason)
    more = exc.error_count() - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON schema as a model wants it: $refs inlined, no generated titles."""
    defs = schema.get("$defs", {})

    def walk(node: Any, depth: int) -> Any:
        if depth > 20:
            raise ValueError("schema nests too deeply (recursive model?)")
        if isinstance(node, list):
            return [walk(item, depth) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            target = walk(defs[node["$ref"].rsplit("/", 1)[-1]], depth + 1)
            extra = {k: walk(v, depth) for k, v in node.items() if k not in ("$ref", "title")}
            return {**target, **extra}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("$defs", "title"):
                continue
            if key == "properties":
                # Property names (which may be "title") are data here, not schema keywords.
                out[key] = {name: walk(sub, depth) for name, sub in value.items()}
            else:
                out[key] = walk(value, depth)
        return out

    return walk(schema, 0)


def serialize_result(value: Any) -> str:
    """A tool's return value as tool_result text: str as is, models/dataclasses/dicts as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return "Done."
    if isinstance(value, BaseModel):
        return value.model_dump_json(exclude_none=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.dumps(value, ensure_ascii=False, default=str)
