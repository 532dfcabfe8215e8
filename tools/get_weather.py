"""The get_weather tool: current conditions and a short forecast from Open-Meteo (no API key)."""
from __future__ import annotations

import asyncio
import json
import unicodedata
from typing import Annotated, Any

import aiohttp
from pydantic import BaseModel, Field, ValidationError

from tools.context import ToolContext
from tools.registry import ToolError, tool

CURRENT_VARIABLES = (
    "temperature_2m",
    "apparent_temperature",
    "relative_humidity_2m",
    "precipitation",
    "weather_code",
    "wind_speed_10m",
)
DAILY_VARIABLES = (
    "weather_code",
    "temperature_2m_max",
    "temperature_2m_min",
    "precipitation_sum",
    "precipitation_probability_max",
    "wind_speed_10m_max",
)
MAX_HTTP_TIMEOUT_S = 8.0
MAX_BODY_BYTES = 1_000_000
MAX_ALTERNATIVES = 4

# WMO weather interpretation codes, as Open-Meteo documents them.
WEATHER_CODES = {
    0: "clear sky",
    1: "mainly clear",
    2: "partly cloudy",
    3: "overcast",
    45: "fog",
    48: "depositing rime fog",
    51: "light drizzle",
    53: "moderate drizzle",
    55: "dense drizzle",
    56: "light freezing drizzle",
    57: "dense freezing drizzle",
    61: "slight rain",
    63: "moderate rain",
    65: "heavy rain",
    66: "light freezing rain",
    67: "heavy freezing rain",
    71: "slight snowfall",
    73: "moderate snowfall",
    75: "heavy snowfall",
    77: "snow grains",
    80: "slight rain showers",
    81: "moderate rain showers",
    82: "violent rain showers",
    85: "slight snow showers",
    86: "heavy snow showers",
    95: "thunderstorm",
    96: "thunderstorm with slight hail",
    99: "thunderstorm with heavy hail",
}


# --- what Open-Meteo sends (only the parts we read) ------------------------------------------


class _GeoResult(BaseModel):
    name: str
    latitude: float
    longitude: float
    country: str | None = None
    country_code: str | None = None
    admin1: str | None = None
    timezone: str | None = None
    population: int | None = None


class _GeoResponse(BaseModel):
    # Open-Meteo leaves "results" out entirely when nothing matches.
    results: list[_GeoResult] = []


class _ForecastResponse(BaseModel):
    timezone: str | None = None
    current_units: dict[str, str] = {}
    current: dict[str, Any] = {}
    daily_units: dict[str, str] = {}
    daily: dict[str, list[Any]] = {}


# --- what the tool returns --------------------------------------------------------------------


class Place(BaseModel):
    name: str
    admin1: str | None = None
    country: str | None = None
    latitude: float
    longitude: float
    timezone: str | None = None


class CurrentConditions(BaseModel):
    time: str | None = None
    conditions: str | None = None
    temperature: str | None = None
    feels_like: str | None = None
    humidity: str | None = None
    precipitation: str | None = None
    wind_speed: str | None = None


class DayForecast(BaseModel):
    date: str
    conditions: str | None = None
    temperature_max: str | None = None
    temperature_min: str | None = None
    precipitation: str | None = None
    precipitation_probability: str | None = None
    wind_speed_max: str | None = None


class WeatherReport(BaseModel):
    place: Place
    current: CurrentConditions
    daily: list[DayForecast]
    alternatives: list[str] | None = None
    note: str | None = None


@tool(status="Checking the forecast for {place}…", assistant_status="is checking the forecast…")
async def get_weather(
    ctx: ToolContext,
    place: Annotated[str, Field(min_length=1, max_length=200)],
    days: Annotated[int, Field(ge=1, le=16)] = 3,
) -> WeatherReport:
    """Get the current weather and a daily forecast for a place, from Open-Meteo.

    Returns temperatures, conditions, precipitation and wind with their units, and the place that was
    found (name, region, country). When several places share the name it answers for the best match
    and lists the others, so you can ask the user which one they meant.

    Args:
        place: City or town name, optionally narrowed with a region or country after a comma,
            e.g. "Lisbon", "Paris, France" or "Paris, Texas".
        days: Number of days of forecast, starting today (1-16).
    """
    timeout = aiohttp.ClientTimeout(total=_http_timeout_s(ctx))
    name, _, qualifier = place.partition(",")
    name, qualifier = name.strip(), qualifier.strip()
    if len(name) < 2:
        raise ToolError(f"{place!r} is too short to look up; give a city or town name.")

    found = await _get_json(
        ctx.http,
        ctx.settings.geocoding_api_url,
        {"name": name, "count": 10, "language": "en", "format": "json"},
        timeout=timeout,
        what="geocoding",
    )
    try:
        geo = _GeoResponse.model_validate(found)
    except ValidationError:
        raise ToolError("The weather service sent place names in an unexpected shape; try again later.") from None
    matches = _matches(geo.results, qualifier)
    if not matches:
        if qualifier and geo.results:
            elsewhere = "; ".join(_label(r) for r in geo.results[:MAX_ALTERNATIVES])
            raise ToolError(f"No place called {name!r} found in {qualifier!r}. Places with that name: {elsewhere}.")
        raise ToolError(f"No place called {place!r} found. Check the spelling or try a nearby larger town.")
    best = matches[0]
    alternatives = _alternatives(best, matches[1:])

    data = await _get_json(
        ctx.http,
        ctx.settings.weather_api_url,
        {
            "latitude": best.latitude,
            "longitude": best.longitude,
            "current": ",".join(CURRENT_VARIABLES),
            "daily": ",".join(DAILY_VARIABLES),
            "timezone": "auto",
            "forecast_days": days,
        },
        timeout=timeout,
        what="forecast",
    )
    try:
        forecast = _ForecastResponse.model_validate(data)
        report = WeatherReport(
            place=Place(
                name=best.name,
                admin1=best.admin1,
                country=best.country,
                latitude=best.latitude,
                longitude=best.longitude,
                timezone=forecast.timezone or best.timezone,
            ),
            current=_current(forecast),
            daily=_daily(forecast),
        )
    except (ValidationError, TypeError, ValueError):
        raise ToolError("The weather service sent a forecast in an unexpected shape; try again later.") from None
    if alternatives:
        report.alternatives = alternatives
        report.note = (
            f"Several places are called {best.name}; this is {_label(best)}. If the user may mean another "
            f"one, say which you used and ask; call again with e.g. {_example(alternatives[0])!r}."
        )
    return report


def _http_timeout_s(ctx: ToolContext) -> float:
    # Two requests in sequence must finish inside the agent's per-tool timeout, so each gets < half.
    return min(MAX_HTTP_TIMEOUT_S, ctx.settings.tool_timeout_s * 0.4)


async def _get_json(
    http: aiohttp.ClientSession, url: str, params: dict[str, Any], *, timeout: aiohttp.ClientTimeout, what: str
) -> Any:
    try:
        async with http.get(url, params=params, timeout=timeout) as response:
            body = await response.content.read(MAX_BODY_BYTES + 1)
            status = response.status
    except asyncio.TimeoutError:
        raise ToolError(
            f"The weather service ({what}) did not answer within {timeout.total:g} s; try again later."
        ) from None
    except aiohttp.ClientError as exc:
        raise ToolError(f"Could not reach the weather service ({what}): {type(exc).__name__}.") from None
    if len(body) > MAX_BODY_BYTES:
        raise ToolError(f"The weather service ({what}) sent an oversized response.")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if status >= 400:
        reason = data.get("reason") if isinstance(data, dict) else None
        if status < 500 and reason:
            raise ToolError(f"The weather service ({what}) rejected the request: {str(reason)[:200]}")
        raise ToolError(f"The weather service ({what}) failed with HTTP {status}; try again later.")
    if not isinstance(data, dict):
        raise ToolError(f"The weather service ({what}) sent a malformed response; try again later.")
    if data.get("error"):
        raise ToolError(f"The weather service ({what}) reported an error: {str(data.get('reason'))[:200]}")
    return data


def _fold(text: str | None) -> str:
    # "Lisboa" vs "lisboa", "Île-de-France" vs "ile-de-france": compare without case or accents.
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def _matches(results: list[_GeoResult], qualifier: str) -> list[_GeoResult]:
    if not qualifier:
        return results
    wanted = _fold(qualifier)
    return [
        r for r in results if wanted in (_fold(r.country), _fold(r.country_code), _fold(r.admin1))
    ]


def _alternatives(best: _GeoResult, others: list[_GeoResult]) -> list[str]:
    """Other strong matches: same name as the best one but a different region or country."""
    seen = {(best.country_code, best.admin1)}
    out: list[str] = []
    for other in others:
        key = (other.country_code, other.admin1)
        if _fold(other.name) == _fold(best.name) and key not in seen:
            seen.add(key)
            out.append(_label(other))
        if len(out) == MAX_ALTERNATIVES:
            break
    return out


def _label(result: _GeoResult) -> str:
    return ", ".join(part for part in (result.name, result.admin1, result.country) if part)


def _example(label: str) -> str:
    parts = label.split(", ")
    return f"{parts[0]}, {parts[1]}" if len(parts) > 1 else parts[0]


def _with_unit(value: Any, unit: str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer() and unit == "%":
        value = int(value)
    if not unit:
        return str(value)
    return f"{value}{unit}" if unit == "%" else f"{value} {unit}"


def _conditions(code: Any) -> str | None:
    if code is None:
        return None
    return WEATHER_CODES.get(int(code), f"weather code {code}")


def _current(forecast: _ForecastResponse) -> CurrentConditions:
    cur, units = forecast.current, forecast.current_units

    def value(key: str) -> str | None:
        return _with_unit(cur.get(key), units.get(key))

    return CurrentConditions(
        time=cur.get("time"),
        conditions=_conditions(cur.get("weather_code")),
        temperature=value("temperature_2m"),
        feels_like=value("apparent_temperature"),
        humidity=value("relative_humidity_2m"),
        precipitation=value("precipitation"),
        wind_speed=value("wind_speed_10m"),
    )


def _daily(forecast: _ForecastResponse) -> list[DayForecast]:
    daily, units = forecast.daily, forecast.daily_units
    dates = daily.get("time") or []

    def value(key: str, i: int) -> Any:
        column = daily.get(key) or []
        return column[i] if i < len(column) else None

    return [
        DayForecast(
            date=str(day),
            conditions=_conditions(value("weather_code", i)),
            temperature_max=_with_unit(value("temperature_2m_max", i), units.get("temperature_2m_max")),
            temperature_min=_with_unit(value("temperature_2m_min", i), units.get("temperature_2m_min")),
            precipitation=_with_unit(value("precipitation_sum", i), units.get("precipitation_sum")),
            precipitation_probability=_with_unit(
                value("precipitation_probability_max", i), units.get("precipitation_probability_max")
            ),
            wind_speed_max=_with_unit(value("wind_speed_10m_max", i), units.get("wind_speed_10m_max")),
        )
        for i, day in enumerate(dates)
    ]
