"""A small MCP server (the official SDK's MCPServer) with read-only and acting tools; stdio or HTTP.

Usage: python -m tests.fakes.mcp_servers.notes [--http PORT] [--token T] [--fail-status N]
Behaviour switches (for fault tests) come from arguments, so one script covers each case.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel

from tests.fakes.mcp_servers._parent import exit_with_parent

app = MCPServer("notes", log_level="WARNING")
NOTES: dict[str, str] = {}


def _png_1x1() -> str:
    """A real one-pixel PNG, base64 (written by Pillow, so it decodes as the bot's image code expects)."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGBA", (1, 1), (255, 0, 0, 255)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


PNG_1X1 = _png_1x1()


class Note(BaseModel):
    title: str
    body: str


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def list_notes() -> list[str]:
    """List the titles of all notes."""
    return sorted(NOTES)


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@app.tool(annotations=ToolAnnotations(destructive_hint=False))
def add_note(note: Note) -> str:
    """Store a note under its title."""
    NOTES[note.title] = note.body
    return f"saved {note.title}"


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def find(query: str, limit: int | None = None, where: Note | str | None = None) -> list[str]:
    """Find notes whose body contains the query (a schema with anyOf and $ref)."""
    return [t for t, b in sorted(NOTES.items()) if query in b][: limit or None]


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def big(size: int) -> str:
    """Return `size` characters."""
    return "x" * size


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def picture() -> list:
    """Return a tiny image."""
    return [TextContent(type="text", text="a dot"), ImageContent(type="image", data=PNG_1X1, mime_type="image/png")]


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def chart(width: int = 2400, height: int = 600) -> list:
    """Return a chart as a PNG image (a gradient), larger than the models take."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.linear_gradient("L").resize((width, height)).convert("RGB").save(out, "PNG")
    return [TextContent(type="text", text=f"chart {width}x{height}"),
            ImageContent(type="image", data=base64.b64encode(out.getvalue()).decode(), mime_type="image/png")]


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def fail(why: str) -> str:
    """Raise an error."""
    raise ValueError(why)


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
async def slow(seconds: float) -> str:
    """Sleep, then answer."""
    await asyncio.sleep(seconds)
    return "woke up"


@app.tool()
def crash() -> str:
    """Exit the server process in the middle of the call."""
    os._exit(3)


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@app.tool()
async def grow(ctx: Context) -> str:
    """Add a tool named `extra` and tell the client the list changed."""

    @app.tool(name="extra", annotations=ToolAnnotations(read_only_hint=True))
    def extra() -> str:
        """An added tool."""
        return "extra"

    await ctx.session.send_tool_list_changed()
    return "grown"


@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def env(name: str) -> str:
    """The value of an environment variable the server was started with."""
    return os.environ.get(name, "<unset>")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, default=None, help="serve Streamable HTTP on this loopback port")
    parser.add_argument("--token", default=None, help="require Authorization: Bearer <token>")
    parser.add_argument("--fail-status", type=int, default=None, help="answer every request with this status")
    parser.add_argument("--garbage", action="store_true", help="print non-JSON lines on stdout first")
    parser.add_argument("--hang", action="store_true", help="never answer the handshake")
    args = parser.parse_args()
    exit_with_parent()
    if args.hang:
        while True:
            sys.stdin.readline() or os._exit(0)
    if args.garbage:
        print("starting up... this is not JSON", flush=True)
        print("{broken json", flush=True)
    if args.http is None:
        app.run()
        return
    import uvicorn

    inner = app.streamable_http_app()

    async def guarded(scope, receive, send):  # an ASGI wrapper: auth and fault injection in front of the SDK's app
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            status = args.fail_status
            if status is None and args.token and headers.get(b"authorization") != f"Bearer {args.token}".encode():
                status = 401
            if status is not None:
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": b'{"error": "refused"}'})
                return
        await inner(scope, receive, send)

    uvicorn.run(guarded, host="127.0.0.1", port=args.http, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
