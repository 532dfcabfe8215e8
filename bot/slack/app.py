"""The Slack app: Bolt AsyncApp wiring, and serving it over Socket Mode or signed HTTP."""
from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web
from slack_bolt.async_app import AsyncApp

from bot.config import Settings
from bot.services import Services
from bot.slack.dedupe import Dedupe
from bot.slack.edit_budget import EditBudget, EditBudgets
from bot.slack.health import LoopLagMonitor, peak_rss_mb
from bot.slack.listeners import register_all
from bot.slack.listeners.events import answered_as

log = logging.getLogger(__name__)

# Answers in flight get this long to finish after SIGTERM (deploys), then end with a short notice.
SHUTDOWN_GRACE_S = 20.0


def build_app(services: Services, budgets: EditBudgets | None = None) -> AsyncApp:
    """The Bolt app on the process's services; the chat.update and appendStream budgets are Slack's own."""
    settings = services.settings
    assert settings.slack_bot_token is not None
    signing_secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    # Bolt builds its client from the token. Handing it a client of our own instead makes Bolt warn
    # at every start, because it reads SLACK_BOT_TOKEN from the environment by itself as well.
    app = AsyncApp(
        token=settings.slack_bot_token.get_secret_value(),
        # Socket Mode needs no signing; Bolt still wants a value to construct.
        signing_secret=signing_secret or "socket-mode",
        request_verification_enabled=not settings.socket_mode,
        process_before_response=False,  # ack at once; the answer runs after the ack
    )
    app.client.base_url = settings.slack_api_url  # SLACK_API_URL; Slack's own by default
    # Share the services' aiohttp session: Slack calls reuse connections instead of opening one each.
    app.client.session = services.http
    app.use(Dedupe(services.store,
                   answered_as=lambda event, bot_user_id: answered_as(services, event, bot_user_id=bot_user_id)))
    register_all(app, services, budgets or EditBudgets.for_store(services.store))
    return app


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM: Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP on PORT."""
    services = await Services.create(settings)
    budgets = EditBudgets.for_store(services.store)
    app = build_app(services, budgets)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if settings.socket_mode:
            await _serve_socket_mode(app, settings, stop)
        else:
            await _serve_http(app, settings, stop, budgets.chat_update)
    finally:
        await services.conversations.drain(SHUTDOWN_GRACE_S)
        await budgets.drain()
        await services.aclose()
        log.info("threadbot stopped")


async def _serve_socket_mode(app: AsyncApp, settings: Settings, stop: asyncio.Event) -> None:
    from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

    assert settings.slack_app_token is not None
    handler = AsyncSocketModeHandler(app, settings.slack_app_token.get_secret_value())
    await handler.connect_async()
    log.info("threadbot connected over Socket Mode")
    await stop.wait()
    await handler.close_async()


async def _serve_http(app: AsyncApp, settings: Settings, stop: asyncio.Event, budget: EditBudget) -> None:
    web_app = app.web_app(path="/slack/events", port=settings.port)

    lag = LoopLagMonitor()
    lag.start()

    async def healthz(request: web.Request) -> web.Response:
        body = {"ok": True, "loop_lag_p50_ms": lag.percentile_ms(50), "loop_lag_p99_ms": lag.percentile_ms(99),
                "loop_lag_max_ms": lag.percentile_ms(100), "peak_rss_mb": peak_rss_mb(),
                "edit_budget": budget.report()}  # tokens, waiting finals: is chat.update the bottleneck?
        if request.query.get("reset") == "1":  # benchmarks measure one phase at a time
            lag.reset()
        return web.json_response(body)

    web_app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host="0.0.0.0", port=settings.port)
    await site.start()
    log.info("threadbot listening on port %s (HTTP mode, events at /slack/events)", settings.port)
    await stop.wait()
    await lag.stop()
    await runner.cleanup()
