"""The `threadbot` command: run, console, ingest, search, usage, mcp, db."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from bot.config import Settings, load_settings
from bot.errors import ConfigError


def _configure_logging() -> None:
    level = os.environ.get("THREADBOT_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # The SDKs log request details (including headers) at DEBUG; keep them quiet so no token is logged.
    for noisy in ("slack_sdk", "slack_bolt", "anthropic", "openai", "httpx", "httpcore", "aiohttp.access",
                  "httpx2", "httpcore2", "mcp"):
        logging.getLogger(noisy).setLevel(max(logging.getLogger(noisy).level, logging.WARNING))


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    settings.require_slack()
    from bot.slack.app import serve

    asyncio.run(serve(settings))
    return 0


def cmd_console(settings: Settings, args: argparse.Namespace) -> int:
    # Needs only a model (key or OPENAI_BASE_URL), never Slack settings: provider_for checks that.
    from bot.console.session import run_console

    return run_console(settings, thread=args.thread, log_level_set="THREADBOT_LOG_LEVEL" in os.environ)


def cmd_usage(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.usage import run_usage

    return run_usage(settings, args.user, days=args.days, as_json=args.json)


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.knowledge import run_ingest

    return run_ingest(settings, args.paths, scope=args.scope)


def cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.knowledge import run_search

    return run_search(settings, args.query, scope=args.scope, k=args.k, as_json=args.json)


def cmd_mcp(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.mcp import run_mcp

    return run_mcp(settings, as_json=args.json)


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.db import run_copy

    return run_copy(settings, to=args.to, source=args.source)


def _usage_days(value: str) -> int:
    from bot.cli.usage import days

    return days(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="threadbot", description="A Slack bot that answers in threads.")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("run", help="run the Slack bot (Socket Mode if SLACK_APP_TOKEN is set, else HTTP on PORT)")

    console = sub.add_parser("console", help="chat with the bot in the terminal (user id `console`)")
    console.add_argument("--thread", help="resume a console thread by id")

    ingest = sub.add_parser("ingest", help="add documents from disk to the knowledge base")
    ingest.add_argument("paths", nargs="+")
    ingest.add_argument("--scope", default="workspace", help="workspace | channel:C… | user:U…")

    search = sub.add_parser("search", help="show what the knowledge search returns for a query ('-' reads stdin)")
    search.add_argument("query")
    search.add_argument("--scope", default="workspace",
                        help="workspace | channel:C… | user:U…, several joined by commas (default: workspace)")
    search.add_argument("-k", type=int, default=5, help="how many results (default 5)")
    search.add_argument("--json", action="store_true")

    usage = sub.add_parser("usage", help="the usage report")
    usage.add_argument("--user", action="append", help="a Slack user id (repeatable); default: everyone")
    usage.add_argument("--days", type=_usage_days, default=30, help="report window in days (1-365, default 30)")
    usage.add_argument("--json", action="store_true")

    mcp = sub.add_parser("mcp", help="the MCP servers of THREADBOT_MCP_CONFIG: started or why not, and their tools")
    mcp.add_argument("--json", action="store_true")

    db = sub.add_parser("db", help="database tools")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    copy = db_sub.add_parser("copy", help="copy the SQLite database into PostgreSQL (safe to run again)")
    copy.add_argument("--to", required=True, metavar="postgresql://…", help="the PostgreSQL database (its URL)")
    copy.add_argument("--from", dest="source", type=Path, help="the SQLite file (default: THREADBOT_DB)")
    return parser


COMMANDS = {"run": cmd_run, "console": cmd_console, "ingest": cmd_ingest, "search": cmd_search, "usage": cmd_usage,
            "mcp": cmd_mcp, "db": cmd_db}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging()
    try:
        settings = load_settings()
        return COMMANDS[args.command](settings, args)
    except ConfigError as exc:
        print(f"threadbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
