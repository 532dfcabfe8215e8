"""/threadbot in Slack: an admin shows or changes how the bot behaves in the channel the command runs in."""
from __future__ import annotations

from datetime import datetime, timezone

from bot.conversation.channels import ChannelAgents, InvalidSetting, tools_text
from bot.slack.mrkdwn import escape_mrkdwn
from bot.store import ChannelSettings, SettingChange

HELP = (
    "*/threadbot* — how I behave in this channel (admins only):\n"
    "• `/threadbot show` — the current settings and the latest changes\n"
    "• `/threadbot prompt <text>` — this channel's persona and instructions (my own rules stay)\n"
    "• `/threadbot model <id>` — the model that answers here, e.g. `claude-haiku-4-5` or `gpt-4o-mini`\n"
    "• `/threadbot tools <name,…|all>` — the tools on offer: built-in tools, MCP servers or single MCP tools\n"
    "• `/threadbot autoanswer on|off` — answer every new message in this channel, no @mention needed\n"
    "• `/threadbot reset` — back to the defaults"
)
NOT_ADMIN = ("Sorry, only the bot's admins can change how I behave in a channel. Ask one of them, or try "
             "`/usage` and `/knowledge`, which everyone can use.")
SHOWN_CHANGES = 5
VALUE_CHARS = 80


async def handle_threadbot_command(channels: ChannelAgents, *, user_id: str, channel_id: str, team_id: str,
                                   text: str) -> str:
    """The ephemeral answer to `/threadbot <text>` from this user in this channel."""
    verb, _, rest = text.strip().partition(" ")
    verb, rest = verb.lower(), rest.strip()
    if verb == "help":
        return HELP
    if user_id not in channels.settings.admins:
        return NOT_ADMIN
    if not channel_id:
        return "Run `/threadbot` in the channel you want to configure."
    if verb in ("", "show"):
        return await show_text(channels, channel_id)
    try:
        changes = _changes(channels, verb, rest)
    except InvalidSetting as exc:
        return f"{exc} Nothing was changed."
    if changes is None:
        return f"I don't know `{escape_mrkdwn(verb)}`.\n{HELP}"
    done = await channels.change(channel_id, team_id=team_id, user_id=user_id, changes=changes)
    if not done:
        return "That is already the setting here; nothing changed."
    return "\n".join(f"Changed {describe(c)}." for c in done) + "\n" + await show_text(channels, channel_id)


def _changes(channels: ChannelAgents, verb: str, rest: str) -> dict[str, str | None] | None:
    if verb == "prompt":
        return {"prompt": channels.check_prompt(rest)}
    if verb == "model":
        model = channels.check_model(rest)
        return {"model": None if model == channels.settings.model else model}
    if verb == "tools":
        return {"tools": tools_text(channels.check_tools(rest))}
    if verb == "autoanswer":
        value = rest.lower()
        if value not in ("on", "off"):
            raise InvalidSetting("Say `/threadbot autoanswer on` or `/threadbot autoanswer off`.")
        return {"autoanswer": "on" if value == "on" else None}
    if verb == "reset":
        return {"prompt": None, "model": None, "tools": None, "autoanswer": None}
    return None


async def show_text(channels: ChannelAgents, channel_id: str) -> str:
    found = await channels.settings_for(channel_id)
    lines = [f"*How I behave in <#{channel_id}>*", *settings_lines(found, default_model=channels.settings.model)]
    history = await channels.store.channel_setting_changes(channel_id, limit=SHOWN_CHANGES)
    if history:
        lines.append("*Latest changes*")
        lines += [f"• {when(c.changed_at)} <@{c.user_id}> changed {describe(c)}" for c in history]
    return "\n".join(lines)


def settings_lines(found: ChannelSettings, *, default_model: str) -> list[str]:
    prompt = f"_{escape_mrkdwn(shorten(found.prompt, 400))}_" if found.prompt else "none (my default instructions)"
    model = f"`{found.model}`" if found.model else f"`{default_model}` (the default)"
    if found.tools is None:
        tools = "all (the default)"
    else:
        tools = ", ".join(f"`{t}`" for t in found.tools) or "none"
    return [f"• Prompt: {prompt}", f"• Model: {model}", f"• Tools: {tools}",
            f"• Auto-answer: {'on' if found.autoanswer else 'off'}"]


def describe(change: SettingChange) -> str:
    return f"*{change.field}* from {_value(change, change.old)} to {_value(change, change.new)}"


def _value(change: SettingChange, value: str | None) -> str:
    if value is None:
        return {"tools": "all", "autoanswer": "off"}.get(change.field, "the default")
    if change.field == "tools" and not value:
        return "none"
    return f"`{escape_mrkdwn(shorten(value, VALUE_CHARS))}`"


def shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit - 1].rstrip() + "…"


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
