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
from bot.slack.health import LoopLagMonitor, peak_rss_mb, settle_start_up_heap
from bot.slack.listeners import register_all
from bot.slack.listeners.events import answered_as, turn_record
from bot.slack.recovery import Recovery
from bot.slack.approvals import SlackApprovals

log = logging.getLogger(__name__)

# Answers in flight get this long to finish after SIGTERM (deploys), then end with a short notice.
SHUTDOWN_GRACE_S = 20.0


def build_app(services: Services, budgets: EditBudgets | None = None, *,
              approvals: SlackApprovals | None = None) -> AsyncApp:
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
                   answered_as=lambda event, bot_user_id: answered_as(services, event, bot_user_id=bot_user_id),
                   record=turn_record, owner=services.owner))
    register_all(app, services, budgets or EditBudgets.for_store(services.store), approvals=approvals)
    return app


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM: Socket Mode when SLACK_APP_TOKEN is set, otherwise HTTP on PORT."""
    services = await Services.create(settings)
    budgets = EditBudgets.for_store(services.store)
    approvals = SlackApprovals(timeout_s=settings.approval_timeout_s, store=services.store, owner=services.owner)
    app = build_app(services, budgets, approvals=approvals)
    recovery = Recovery(services, budgets, app.client, approvals=approvals)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Unfinished turns of a previous process are handled in the background once events are served.
    started: asyncio.Future[None] = loop.create_future()

    async def recover_once_serving() -> None:
        await started
        settle_start_up_heap()  # before the first event: full collections then skip start-up's objects
        await recovery.start()

    recovering = asyncio.create_task(recover_once_serving())
    try:
        if settings.socket_mode:
            await _serve_socket_mode(app, settings, stop, started)
        else:
            await _serve_http(app, settings, stop, budgets.chat_update, started)
    finally:
        recovery.stopping = True  # no recovered answer starts now; those in flight drain like the rest
        await services.conversations.drain(SHUTDOWN_GRACE_S)
        recovering.cancel()
        await asyncio.gather(recovering, return_exceptions=True)
        await recovery.stop()
        await budgets.drain()
        await services.aclose()
        log.info("threadbot stopped")


async def _serve_socket_mode(app: AsyncApp, settings: Settings, stop: asyncio.Event,
                             started: "asyncio.Future[None]") -> None:
    from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

    assert settings.slack_app_token is not None
    handler = AsyncSocketModeHandler(app, settings.slack_app_token.get_secret_value())
    await handler.connect_async()
    log.info("threadbot connected over Socket Mode")
    started.set_result(None)
    await stop.wait()
    await handler.close_async()


async def _serve_http(app: AsyncApp, settings: Settings, stop: asyncio.Event, budget: EditBudget,
                      started: "asyncio.Future[None]") -> None:
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
    started.set_result(None)
    await stop.wait()
    await lag.stop()
    await runner.cleanup()
