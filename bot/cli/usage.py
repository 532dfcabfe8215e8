"""`threadbot usage`: the usage report on the command line, as text or JSON."""
from __future__ import annotations

import argparse
import asyncio
import json
from datetime import datetime, timezone

from bot.accounting.report import MAX_DAYS, build_report, render_text, to_json
from bot.config import Settings
from bot.errors import ConfigError
from bot.store import open_store


def days(value: str) -> int:
    """argparse type for --days: a whole number within the report's range."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days") from None
    if not 1 <= number <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"pick between 1 and {MAX_DAYS} days")
    return number


def run_usage(settings: Settings, users: list[str] | None, *, days: int, as_json: bool) -> int:
    # Opening a missing path would create an empty database and print a report of zeros.
    if settings.database_url is None and not settings.db_path.exists():
        raise ConfigError(f"THREADBOT_DB: no database at {settings.db_path}. Point it at the bot's database file.")
    async def build() -> list:
        store = await open_store(settings)
        try:
            now = datetime.now(timezone.utc)
            return [await build_report(store, user_id=user, days=days, now=now) for user in users or [None]]
        finally:
            await store.close()

    reports = asyncio.run(build())
    if as_json:
        data = [to_json(r) for r in reports]
        print(json.dumps(data[0] if len(data) == 1 else data, indent=2, ensure_ascii=False))
    else:
        print("\n\n".join(render_text(r) for r in reports))
    return 0
