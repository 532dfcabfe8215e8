"""The `threadbot` command: run, console, ingest, search, usage."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from bot.config import Settings, load_settings
from bot.errors import ConfigError


def _configure_logging() -> None:
    level = os.environ.get("THREADBOT_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # The SDKs log request details (including headers) at DEBUG; keep them quiet so no token is logged.
    for noisy in ("slack_sdk", "slack_bolt", "anthropic", "openai", "httpx", "httpcore", "aiohttp.access"):
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
    import json
    from datetime import datetime, timezone

    from bot.store import Store
    from bot.accounting.report import build_report, render_text, to_json

    # Opening a missing path would create an empty database and print a report of zeros.
    if not settings.db_path.exists():
        raise ConfigError(f"THREADBOT_DB: no database at {settings.db_path}. Point it at the bot's database file.")
    store = Store(settings.db_path)
    try:
        now = datetime.now(timezone.utc)
        users = args.user or [None]
        reports = [build_report(store, user_id=user, days=args.days, now=now) for user in users]
    finally:
        store.close()
    if args.json:
        data = [to_json(r) for r in reports]
        print(json.dumps(data[0] if len(data) == 1 else data, indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(render_text(r) for r in reports))
    return 0


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.knowledge import run_ingest

    return run_ingest(settings, args.paths, scope=args.scope)


def cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    from bot.cli.knowledge import run_search

    return run_search(settings, args.query, scope=args.scope, k=args.k, as_json=args.json)


def _days(value: str) -> int:
    from bot.accounting.report import MAX_DAYS

    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days") from None
    if not 1 <= days <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"pick between 1 and {MAX_DAYS} days")
    return days


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
    usage.add_argument("--days", type=_days, default=30, help="report window in days (1-365, default 30)")
    usage.add_argument("--json", action="store_true")
    return parser


COMMANDS = {"run": cmd_run, "console": cmd_console, "ingest": cmd_ingest, "search": cmd_search, "usage": cmd_usage}


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
