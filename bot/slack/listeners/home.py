"""app_home_opened: publish the user's Home tab (bot/slack/home.py); a failure is logged, never shown."""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.services import Services
from bot.slack.home import home_view
from bot.slack.web_api import FAILURES, call, reason

log = logging.getLogger(__name__)


def register(app: AsyncApp, services: Services) -> None:
    async def handle_app_home_opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        user_id = event.get("user")
        if event.get("tab") != "home" or not user_id:  # the Messages tab fires this event too
            return
        try:
            view = await home_view(services.store, services.settings, user_id=user_id, now=datetime.now(timezone.utc))
            await call(client, "views.publish", patient=False, user_id=user_id, view=view)
        except FAILURES as exc:
            log.warning("views.publish for %s failed: %s", user_id, reason(exc))
        except Exception:  # noqa: BLE001 - the Home tab is a courtesy: a bug in it must not surface anywhere
            log.exception("building the Home tab for %s failed", user_id)

    app.event("app_home_opened")(handle_app_home_opened)
