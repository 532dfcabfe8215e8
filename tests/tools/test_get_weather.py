"""get_weather against the loopback Open-Meteo fake: places, units, ambiguity and upstream failures."""
from __future__ import annotations

import json
import time

import aiohttp
import jsonschema
import pytest

from bot.config import load_settings
from bot.messages import ModelRequest, ToolUseBlock
from bot.store.sqlite import SqliteStore
from tests.fakes.open_meteo import Fault, FakeOpenMeteo
from tools.context import ToolContext
from tools.get_weather import get_weather
from tools.registry import Registry


async def _no_model(request: ModelRequest):
    raise AssertionError("get_weather never calls the model")


@pytest.fixture
async def fake():
    async with FakeOpenMeteo() as server:
        yield server


@pytest.fixture
def registry() -> Registry:
    return Registry([get_weather])


@pytest.fixture
async def make_ctx(tmp_path, fake: FakeOpenMeteo):
    store = SqliteStore(tmp_path / "t.db")
    async with aiohttp.ClientSession() as http:
        def build(**overrides: object) -> ToolContext:
            settings = load_settings(**fake.env(), **overrides)
            return ToolContext(user_id="U1", team_id="T1", channel_id="C1", thread_ts="1.0", store=store,
                               http=http, settings=settings, call_model=_no_model)
        yield build
    await store.close()


@pytest.fixture
def ctx(make_ctx) -> ToolContext:
    return make_ctx()


async def call(registry: Registry, ctx: ToolContext, **input: object):
    return await registry.run(ctx, ToolUseBlock(id="toolu_w", name="get_weather", input=dict(input)))


def test_schema(registry: Registry) -> None:
    (spec,) = registry.specs()
    assert spec.name == "get_weather"
    assert spec.description.startswith("Get the current weather and a daily forecast for a place")
    assert "Args:" not in spec.description
    assert spec.input_schema == {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "place": {
                "type": "string", "minLength": 1, "maxLength": 200,
                "description": 'City or town name, optionally narrowed with a region or country after a comma, '
                               'e.g. "Lisbon", "Paris, France" or "Paris, Texas".',
            },
            "days": {"type": "integer", "minimum": 1, "maximum": 16, "default": 3,
                     "description": "Number of days of forecast, starting today (1-16)."},
        },
        "required": ["place"],
    }
    jsonschema.Draft202012Validator.check_schema(spec.input_schema)


def test_status_line(registry: Registry) -> None:
    assert registry.status_line("get_weather", {"place": "Lisbon"}) == "Checking the forecast for Lisbon…"
    assert registry.status_line("get_weather", {}) == "Using get weather…"


async def test_lisbon_with_units_and_resolved_place(registry, ctx, fake: FakeOpenMeteo) -> None:
    result = await call(registry, ctx, place="Lisbon")
    assert not result.is_error, result.content
    report = json.loads(result.content)
    assert report["place"] == {"name": "Lisbon", "admin1": "Lisbon", "country": "Portugal",
                               "latitude": 38.71667, "longitude": -9.13333, "timezone": "Europe/Lisbon"}
    assert report["current"] == {
        "time": "2025-06-02T12:00", "conditions": "partly cloudy", "temperature": "18.5 °C",
        "feels_like": "17.8 °C", "humidity": "64%", "precipitation": "0.0 mm", "wind_speed": "14.8 km/h",
    }
    assert [d["date"] for d in report["daily"]] == ["2025-06-02", "2025-06-03", "2025-06-04"]
    assert report["daily"][0] == {
        "date": "2025-06-02", "conditions": "partly cloudy", "temperature_max": "21.4 °C",
        "temperature_min": "12.4 °C", "precipitation": "0.0 mm", "precipitation_probability": "5%",
        "wind_speed_max": "18.0 km/h",
    }
    assert report["daily"][2]["conditions"] == "slight rain"
    assert report["daily"][2]["precipitation_probability"] == "75%"
    assert "alternatives" not in report and "note" not in report

    (geo,) = fake.requests_to("geocoding")
    assert geo.path == "/v1/search"
    assert geo.params == {"name": "Lisbon", "count": "10", "language": "en", "format": "json"}
    (forecast,) = fake.requests_to("forecast")
    assert forecast.params["latitude"] == "38.71667" and forecast.params["longitude"] == "-9.13333"
    assert forecast.params["timezone"] == "auto"
    assert forecast.params["forecast_days"] == "3"
    assert forecast.params["current"].split(",") == [
        "temperature_2m", "apparent_temperature", "relative_humidity_2m", "precipitation", "weather_code",
        "wind_speed_10m"]
    assert "temperature_2m_max" in forecast.params["daily"].split(",")


async def test_days_is_passed_through(registry, ctx, fake: FakeOpenMeteo) -> None:
    result = await call(registry, ctx, place="porto", days=7)
    report = json.loads(result.content)
    assert report["place"]["name"] == "Porto" and report["place"]["country"] == "Portugal"
    assert len(report["daily"]) == 7
    assert fake.requests_to("forecast")[0].params["forecast_days"] == "7"


@pytest.mark.parametrize("days", [0, 17, "many"])
async def test_days_out_of_range_is_rejected_before_any_request(registry, ctx, fake, days) -> None:
    result = await call(registry, ctx, place="Lisbon", days=days)
    assert result.is_error
    assert result.content.startswith("Invalid arguments for get_weather: days: ")
    assert fake.requests == []


async def test_ambiguous_place_answers_best_match_and_lists_others(registry, ctx) -> None:
    result = await call(registry, ctx, place="Paris")
    assert not result.is_error
    report = json.loads(result.content)
    assert (report["place"]["name"], report["place"]["country"]) == ("Paris", "France")
    assert report["alternatives"] == ["Paris, Texas, United States", "Paris, Tennessee, United States"]
    assert "Several places are called Paris" in report["note"]
    assert "'Paris, Texas'" in report["note"]


async def test_qualifier_selects_the_place(registry, ctx, fake: FakeOpenMeteo) -> None:
    result = await call(registry, ctx, place="Paris, Texas")
    report = json.loads(result.content)
    assert report["place"]["admin1"] == "Texas"
    assert report["place"]["timezone"] == "America/Chicago"
    assert "alternatives" not in report
    assert fake.requests_to("geocoding")[0].params["name"] == "Paris"
    assert fake.requests_to("forecast")[0].params["latitude"] == "33.66094"


async def test_qualifier_that_matches_nothing_lists_the_places_found(registry, ctx) -> None:
    result = await call(registry, ctx, place="Paris, Germany")
    assert result.is_error
    assert result.content.startswith("No place called 'Paris' found in 'Germany'. Places with that name: ")
    assert "Paris, Île-de-France, France" in result.content


async def test_unknown_place(registry, ctx, fake: FakeOpenMeteo) -> None:
    result = await call(registry, ctx, place="Atlantis")
    assert result.is_error
    assert result.content.startswith("No place called 'Atlantis' found.")
    assert fake.requests_to("forecast") == []


@pytest.mark.parametrize("endpoint", ["geocoding", "forecast"])
async def test_upstream_500(registry, ctx, fake: FakeOpenMeteo, endpoint) -> None:
    fake.fail(endpoint, 500)
    result = await call(registry, ctx, place="Lisbon")
    assert result.is_error
    assert result.content == f"The weather service ({endpoint}) failed with HTTP 500; try again later."


async def test_upstream_400_reason_is_passed_on(registry, ctx, fake: FakeOpenMeteo) -> None:
    fake.inject("forecast", Fault(status=400, body='{"error":true,"reason":"Forecast days is invalid."}'))
    result = await call(registry, ctx, place="Lisbon")
    assert result.is_error
    assert result.content == "The weather service (forecast) rejected the request: Forecast days is invalid."


async def test_malformed_json(registry, ctx, fake: FakeOpenMeteo) -> None:
    fake.malformed("forecast")
    result = await call(registry, ctx, place="Lisbon")
    assert result.is_error
    assert result.content == "The weather service (forecast) sent a malformed response; try again later."


async def test_unexpected_shape(registry, ctx, fake: FakeOpenMeteo) -> None:
    fake.malformed("geocoding", body='{"results": [{"name": "Lisbon"}]}')
    result = await call(registry, ctx, place="Lisbon")
    assert result.is_error
    assert "unexpected shape" in result.content


async def test_slow_upstream_is_cut_off_below_the_tool_timeout(registry, make_ctx, fake: FakeOpenMeteo) -> None:
    ctx = make_ctx(THREADBOT_TOOL_TIMEOUT_S="1")
    fake.slow("forecast", 5.0)
    started = time.monotonic()
    result = await call(registry, ctx, place="Lisbon")
    elapsed = time.monotonic() - started
    assert result.is_error
    assert result.content == "The weather service (forecast) did not answer within 0.4 s; try again later."
    assert elapsed < 1.0  # the whole tool, both requests, stays inside THREADBOT_TOOL_TIMEOUT_S


async def test_unreachable_service(registry, tmp_path) -> None:
    store = SqliteStore(tmp_path / "u.db")
    async with FakeOpenMeteo() as gone:
        env = gone.env()
    async with aiohttp.ClientSession() as http:
        ctx = ToolContext(user_id="U1", team_id="T1", channel_id="C1", thread_ts="1.0", store=store, http=http,
                          settings=load_settings(**env), call_model=_no_model)
        result = await call(registry, ctx, place="Lisbon")
    await store.close()
    assert result.is_error
    assert result.content.startswith("Could not reach the weather service (geocoding): Client")


# --- the fake itself behaves like Open-Meteo -------------------------------------------------


async def test_fake_returns_open_meteo_error_shape(fake: FakeOpenMeteo) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(fake.forecast_url, params={"latitude": 1, "longitude": 2, "forecast_days": 30}) as r:
            assert r.status == 400
            assert await r.json() == {"error": True, "reason": "Forecast days is invalid. Allowed range 0 to 16."}
        async with http.get(fake.forecast_url, params={"latitude": 1, "longitude": 2, "daily": "bogus"}) as r:
            assert r.status == 400
            assert "bogus" in (await r.json())["reason"]
        async with http.get(fake.geocoding_url, params={"name": "Nowhere"}) as r:
            body = await r.json()
            assert r.status == 200 and "results" not in body


def test_fake_runs_in_a_background_thread() -> None:
    import urllib.request

    with FakeOpenMeteo.in_thread() as server:
        with urllib.request.urlopen(f"{server.geocoding_url}?name=Lisbon&count=1", timeout=5) as response:
            body = json.loads(response.read())
        assert [r["name"] for r in body["results"]] == ["Lisbon"]
        assert server.requests_to("geocoding")[0].params == {"name": "Lisbon", "count": "1"}
