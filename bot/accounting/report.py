"""Usage reports: building them from SQL aggregates, rendering for Slack, the CLI and JSON, and /usage."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from bot.llm.catalog import PRICES_AS_OF
from bot.store import UsageTotals

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.store import Store

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
TOP_USERS = 10
MAX_DAYS = 365
EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class Period:
    label: str  # "Today", "Last 7 days", …
    days: int
    since: datetime
    totals: UsageTotals


@dataclass(frozen=True)
class DailyPoint:
    day: date
    totals: UsageTotals


@dataclass(frozen=True)
class Breakdown:
    key: str  # a user id, model id or surface
    totals: UsageTotals


@dataclass(frozen=True)
class FeedbackCounts:
    up: int
    down: int


@dataclass
class UsageReport:
    """One user's usage (user_id set) or the whole workspace's (user_id None)."""

    user_id: str | None
    generated_at: datetime
    days: int
    periods: list[Period]
    daily: list[DailyPoint]  # oldest first, every day present (zeros filled)
    by_model: list[Breakdown]
    by_surface: list[Breakdown]
    feedback: FeedbackCounts  # 👍/👎 votes cast in the period (by this user, or by everyone)
    top_users: list[Breakdown] = field(default_factory=list)  # workspace report only


async def build_report(store: "Store", *, user_id: str | None, days: int = 30, now: datetime) -> UsageReport:
    """Totals for today, the last 7 days and the last `days` days (UTC calendar days, today included),
    a daily series for the sparkline, and breakdowns over the last `days` days."""
    days = max(1, min(MAX_DAYS, days))
    now = now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)

    def start(n: int) -> datetime:
        return today - timedelta(days=n - 1)

    periods = [
        Period("Today" if n == 1 else f"Last {n} days", n, start(n),
               await store.usage_totals(since=start(n).timestamp(), user_id=user_id))
        for n in sorted({1, 7, days})
        if n <= days or n == 1
    ]
    spark_days = 14 if days < 30 else 30
    per_day = dict(await store.usage_grouped("day", since=start(spark_days).timestamp(), user_id=user_id))
    first_day = (start(spark_days).date() - EPOCH).days
    daily = [
        DailyPoint(EPOCH + timedelta(days=d), per_day.get(d, UsageTotals()))
        for d in range(first_day, first_day + spark_days)
    ]
    since = start(days).timestamp()

    async def breakdown(by: str, limit: int | None = None) -> list[Breakdown]:
        return [Breakdown(str(k), t) for k, t in await store.usage_grouped(by, since=since, user_id=user_id, limit=limit)]

    return UsageReport(
        user_id=user_id,
        generated_at=now,
        days=days,
        periods=periods,
        daily=daily,
        by_model=await breakdown("model"),
        by_surface=await breakdown("surface"),
        top_users=await breakdown("user_id", TOP_USERS) if user_id is None else [],
        feedback=await _feedback(store, since=since, user_id=user_id),
    )


async def _feedback(store: "Store", *, since: float, user_id: str | None) -> FeedbackCounts:
    up, down = await store.feedback_counts(since=since, user_id=user_id)
    return FeedbackCounts(up, down)


# --- formatting -------------------------------------------------------------------------------


def format_cost(amount: Decimal) -> str:
    """$0.00 for nothing, 4 decimals below ten cents ($0.0123), cents with separators above ($1,234.50)."""
    if amount == 0:
        return "$0.00"
    if amount < Decimal("0.0001"):
        return "<$0.0001"
    fine = amount.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    if fine < Decimal("0.1"):
        return f"${fine}"
    return f"${amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


def format_tokens(n: int) -> str:
    return f"{n:,}"


def sparkline(values: list[Decimal] | list[int]) -> str:
    """One block per value: ▁ for zero, ▂…█ scaled to the largest value."""
    top = max(values, default=0)
    if not top:
        return SPARK_BLOCKS[0] * len(values)
    levels = len(SPARK_BLOCKS) - 1  # ▂…█ for non-zero values, in equal-width buckets
    return "".join(
        SPARK_BLOCKS[0] if not v else SPARK_BLOCKS[1 + min(levels - 1, int(Decimal(v) / Decimal(top) * levels))]
        for v in values
    )


def _spark(report: UsageReport) -> tuple[str, str]:
    """The sparkline and what it measures (cost, or tokens when every call was free)."""
    costs = [p.totals.cost_usd for p in report.daily]
    if any(costs) or not any(p.totals.total_tokens for p in report.daily):
        return sparkline(costs), "cost"
    return sparkline([p.totals.total_tokens for p in report.daily]), "tokens"


def _calls(n: int) -> str:
    return "1 call" if n == 1 else f"{n:,} calls"


def _token_parts(t: UsageTotals) -> str:
    return (f"{format_tokens(t.input_tokens)} input · {format_tokens(t.output_tokens)} output · "
            f"{format_tokens(t.cache_creation_input_tokens)} cache write · "
            f"{format_tokens(t.cache_read_input_tokens)} cache read")


def _range(report: UsageReport) -> str:
    first, last = report.daily[0].day, report.daily[-1].day
    return f"{first:%b} {first.day} – {last:%b} {last.day}"


def render_slack(report: UsageReport, *, caller_id: str | None = None) -> str:
    """mrkdwn text for a /usage reply."""
    if report.user_id is None:
        title = "*Workspace usage*"
    elif report.user_id == caller_id:
        title = "*Your usage*"
    else:
        title = f"*Usage of <@{report.user_id}>*"
    lines = [title]
    for p in report.periods:
        lines.append(f"• *{p.label}*: {_calls(p.totals.calls)}, {format_cost(p.totals.cost_usd)}"
                     f" — {_token_parts(p.totals)}")
    spark, what = _spark(report)
    lines.append(f"Daily {what}, last {len(report.daily)} days ({_range(report)}): `{spark}`")
    window = f"last {report.days} days" if report.days > 1 else "today"
    if report.top_users:
        lines.append(f"*Top users* ({window})")
        lines += [f"• <@{b.key}>: {_calls(b.totals.calls)}, {format_cost(b.totals.cost_usd)},"
                  f" {format_tokens(b.totals.total_tokens)} tokens" for b in report.top_users]
    if report.by_model:
        lines.append(f"*By model* ({window})")
        lines += [f"• `{b.key}`: {_calls(b.totals.calls)}, {format_cost(b.totals.cost_usd)}" for b in report.by_model]
    if report.by_surface:
        lines.append(f"*By surface* ({window})")
        lines += [f"• {b.key}: {_calls(b.totals.calls)}, {format_cost(b.totals.cost_usd)}" for b in report.by_surface]
    lines.append(f"*Feedback* ({window}): 👍 {report.feedback.up:,} · 👎 {report.feedback.down:,}")
    lines.append(f"_Costs are estimates from list prices as of {PRICES_AS_OF}. Days are UTC._")
    return "\n".join(lines)


def render_text(report: UsageReport) -> str:
    """Plain text for `threadbot usage`."""
    who = f"user {report.user_id}" if report.user_id else "the whole workspace"
    lines = [f"Usage for {who} — {report.generated_at:%Y-%m-%d %H:%M} UTC", ""]
    header = ("period", "calls", "input", "output", "cache write", "cache read", "cost")
    rows = [header] + [
        (p.label, f"{p.totals.calls:,}", format_tokens(p.totals.input_tokens), format_tokens(p.totals.output_tokens),
         format_tokens(p.totals.cache_creation_input_tokens), format_tokens(p.totals.cache_read_input_tokens),
         format_cost(p.totals.cost_usd))
        for p in report.periods
    ]
    lines += _table(rows)
    spark, what = _spark(report)
    lines += ["", f"Daily {what}, last {len(report.daily)} days ({_range(report)}): {spark}"]
    for title, items in (("Top users", report.top_users), ("By model", report.by_model),
                         ("By surface", report.by_surface)):
        if items:
            lines += ["", f"{title} (last {report.days} days)"]
            lines += _table([(b.key, _calls(b.totals.calls), f"{format_tokens(b.totals.total_tokens)} tokens",
                              format_cost(b.totals.cost_usd)) for b in items], indent="  ")
    lines += ["", f"Feedback (last {report.days} days): 👍 {report.feedback.up:,}  👎 {report.feedback.down:,}"]
    lines += ["", f"Costs are estimates from list prices as of {PRICES_AS_OF}."]
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]], *, indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]


def to_json(report: UsageReport) -> dict[str, Any]:
    """For `threadbot usage --json`: exact integers, costs as decimal strings (no float rounding)."""

    def totals(t: UsageTotals) -> dict[str, Any]:
        return {
            "calls": t.calls,
            "input_tokens": t.input_tokens,
            "output_tokens": t.output_tokens,
            "cache_creation_input_tokens": t.cache_creation_input_tokens,
            "cache_read_input_tokens": t.cache_read_input_tokens,
            "cost_usd": str(t.cost_usd),
        }

    return {
        "user_id": report.user_id,
        "generated_at": report.generated_at.isoformat(),
        "days": report.days,
        "prices_as_of": PRICES_AS_OF,
        "periods": [{"label": p.label, "days": p.days, "since": p.since.isoformat(), **totals(p.totals)}
                    for p in report.periods],
        "daily": [{"date": d.day.isoformat(), **totals(d.totals)} for d in report.daily],
        "by_model": [{"model": b.key, **totals(b.totals)} for b in report.by_model],
        "by_surface": [{"surface": b.key, **totals(b.totals)} for b in report.by_surface],
        "top_users": [{"user_id": b.key, **totals(b.totals)} for b in report.top_users],
        "feedback": {"up": report.feedback.up, "down": report.feedback.down},
    }


# --- /usage -------------------------------------------------------------------------------------

_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]*[0-9][A-Z0-9]*$")  # real ids always carry digits
_DAYS = re.compile(r"^(\d{1,3})d?$", re.IGNORECASE)

USAGE_HELP = (
    "`/usage` shows your own usage (today, 7 and 30 days). Admins can also use `/usage team` and "
    "`/usage @someone`. Add a number of days to change the window, e.g. `/usage 7`."
)
NOT_ADMIN = (
    "Only threadbot admins can see the team's usage or someone else's. "
    "`/usage` on its own shows yours."
)


@dataclass(frozen=True)
class UsageArgs:
    """What `/usage …` asks for: one user's report (user_id) or the workspace's (None) over `days`."""

    user_id: str | None
    days: int = 30


def parse_usage_args(text: str, *, caller_id: str, extra_self_words: tuple[str, ...] = (),
                     help_text: str = USAGE_HELP, from_slack: bool = True) -> UsageArgs | str:
    """`[team | me | @user | U…] [days]` as UsageArgs, or the reply (help or a problem) as a str.

    from_slack: the text was typed into Slack, so `<@U…>` mentions are understood, a bare `@name` gets a
    hint, and words are quoted as mrkdwn `code`; otherwise (the console) words are quoted plainly."""
    target: str | None = caller_id
    days = 30
    for word in text.split():
        lowered = word.lower()
        if lowered in ("help", "?"):
            return help_text
        if lowered in ("team", "workspace", "all"):
            target = None
        elif lowered == "me" or lowered in extra_self_words:
            target = caller_id
        elif from_slack and (match := _MENTION.match(word)):
            target = match.group(1)
        elif _USER_ID.match(word):
            target = word
        elif match := _DAYS.match(word):
            days = int(match.group(1))
            if not 1 <= days <= MAX_DAYS:
                return f"Pick between 1 and {MAX_DAYS} days."
        elif from_slack and word.startswith("@"):
            return (f"I couldn't tell who `{word}` is. Pick the person from Slack's autocomplete so the "
                    "command carries a real mention.")
        else:
            quoted = f"`{word}`" if from_slack else repr(word)
            return f"I didn't understand {quoted}. {help_text}"
    return UsageArgs(user_id=target, days=days)


async def handle_usage_command(store: "Store", settings: "Settings", *, caller_id: str, text: str, now: datetime) -> str:
    """The reply to `/usage [team | @user | U…] [days]` (mrkdwn). Admins are settings.admins."""
    args = parse_usage_args(text, caller_id=caller_id)
    if isinstance(args, str):
        return args
    if args.user_id != caller_id and caller_id not in settings.admins:
        return NOT_ADMIN
    report = await build_report(store, user_id=args.user_id, days=args.days, now=now)
    return render_slack(report, caller_id=caller_id)
