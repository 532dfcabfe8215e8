"""A loopback stand-in for Open-Meteo's geocoding and forecast APIs, with injectable failures."""
from __future__ import annotations

import asyncio
import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Iterator, Literal

from aiohttp import web

Endpoint = Literal["geocoding", "forecast"]

# A few real places, in the shape the geocoding API returns them (ids are GeoNames ids).
PLACES: list[dict[str, Any]] = [
    {"id": 2267057, "name": "Lisbon", "latitude": 38.71667, "longitude": -9.13333, "elevation": 45.0,
     "feature_code": "PPLC", "country_code": "PT", "admin1_id": 2267056, "timezone": "Europe/Lisbon",
     "population": 517802, "country_id": 2264397, "country": "Portugal", "admin1": "Lisbon"},
    {"id": 2735943, "name": "Porto", "latitude": 41.14961, "longitude": -8.61099, "elevation": 104.0,
     "feature_code": "PPLA", "country_code": "PT", "admin1_id": 2735941, "timezone": "Europe/Lisbon",
     "population": 249633, "country_id": 2264397, "country": "Portugal", "admin1": "Porto"},
    {"id": 2988507, "name": "Paris", "latitude": 48.85341, "longitude": 2.3488, "elevation": 42.0,
     "feature_code": "PPLC", "country_code": "FR", "admin1_id": 3012874, "admin2_id": 2968815,
     "timezone": "Europe/Paris", "population": 2138551, "country_id": 3017382, "country": "France",
     "admin1": "Île-de-France", "admin2": "Paris"},
    {"id": 4717560, "name": "Paris", "latitude": 33.66094, "longitude": -95.55551, "elevation": 177.0,
     "feature_code": "PPLA2", "country_code": "US", "admin1_id": 4736286, "admin2_id": 4705349,
     "timezone": "America/Chicago", "population": 24782, "postcodes": ["75460", "75461", "75462"],
     "country_id": 6252001, "country": "United States", "admin1": "Texas", "admin2": "Lamar"},
    {"id": 4647963, "name": "Paris", "latitude": 36.302, "longitude": -88.32671, "elevation": 157.0,
     "feature_code": "PPLA2", "country_code": "US", "admin1_id": 4662168, "admin2_id": 4630468,
     "timezone": "America/Chicago", "population": 10156, "country_id": 6252001, "country": "United States",
     "admin1": "Tennessee", "admin2": "Henry"},
    {"id": 2643743, "name": "London", "latitude": 51.50853, "longitude": -0.12574, "elevation": 25.0,
     "feature_code": "PPLC", "country_code": "GB", "admin1_id": 6269131, "timezone": "Europe/London",
     "population": 8961989, "country_id": 2635167, "country": "United Kingdom", "admin1": "England"},
]

UTC_OFFSETS = {"Europe/Lisbon": (3600, "WEST"), "Europe/Paris": (7200, "CEST"),
               "America/Chicago": (-18000, "CDT"), "Europe/London": (3600, "BST"), "GMT": (0, "GMT")}

CURRENT_UNITS = {
    "temperature_2m": "°C", "apparent_temperature": "°C", "relative_humidity_2m": "%", "precipitation": "mm",
    "rain": "mm", "weather_code": "wmo code", "cloud_cover": "%", "wind_speed_10m": "km/h",
    "wind_direction_10m": "°", "wind_gusts_10m": "km/h", "is_day": "", "pressure_msl": "hPa",
}
DAILY_UNITS = {
    "weather_code": "wmo code", "temperature_2m_max": "°C", "temperature_2m_min": "°C",
    "apparent_temperature_max": "°C", "apparent_temperature_min": "°C", "precipitation_sum": "mm",
    "precipitation_probability_max": "%", "wind_speed_10m_max": "km/h", "sunrise": "iso8601",
    "sunset": "iso8601", "uv_index_max": "",
}
WEATHER_CYCLE = [2, 0, 61, 3, 80, 1, 95]


@dataclass
class RecordedRequest:
    endpoint: Endpoint
    path: str
    params: dict[str, str]


@dataclass
class Fault:
    """What to do instead of (or before) answering: an HTTP status, a raw body, a delay."""

    status: int | None = None
    body: str | None = None
    delay_s: float = 0.0
    times: int | None = 1  # None = every request from now on


@dataclass
class FakeOpenMeteo:
    """`async with FakeOpenMeteo() as fake:` in the test's loop, or `with FakeOpenMeteo.in_thread()`."""

    places: list[dict[str, Any]] = field(default_factory=lambda: [dict(p) for p in PLACES])
    today: date = date(2025, 6, 2)
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._faults: dict[str, list[Fault]] = {"geocoding": [], "forecast": []}
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self.port = 0

    # --- control -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def geocoding_url(self) -> str:
        return f"{self.base_url}/v1/search"

    @property
    def forecast_url(self) -> str:
        return f"{self.base_url}/v1/forecast"

    def env(self) -> dict[str, str]:
        """The settings that point threadbot at this fake."""
        return {"THREADBOT_GEOCODING_API_URL": self.geocoding_url, "THREADBOT_WEATHER_API_URL": self.forecast_url}

    def inject(self, endpoint: Endpoint, fault: Fault) -> None:
        with self._lock:
            self._faults[endpoint].append(fault)

    def fail(self, endpoint: Endpoint, status: int = 500, *, times: int | None = 1) -> None:
        self.inject(endpoint, Fault(status=status, body='{"error":true,"reason":"Internal Server Error"}',
                                    times=times))

    def slow(self, endpoint: Endpoint, delay_s: float, *, times: int | None = 1) -> None:
        self.inject(endpoint, Fault(delay_s=delay_s, times=times))

    def malformed(self, endpoint: Endpoint, body: str = '{"latitude": 38.7, "current": ', *,
                  times: int | None = 1) -> None:
        self.inject(endpoint, Fault(status=200, body=body, times=times))

    def requests_to(self, endpoint: Endpoint) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.endpoint == endpoint]

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> "FakeOpenMeteo":
        app = web.Application()
        app.router.add_get("/v1/search", self._handle_search)
        app.router.add_get("/v1/forecast", self._handle_forecast)
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def close(self) -> None:
        if self._closing is not None:
            self._closing.set()  # wakes slow handlers so shutdown does not wait for them
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "FakeOpenMeteo":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @classmethod
    @contextmanager
    def in_thread(cls, **kwargs: Any) -> Iterator["FakeOpenMeteo"]:
        """Run the fake on its own event loop in a daemon thread (for tests that start the bot process)."""
        fake = cls(**kwargs)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="fake-open-meteo", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(fake.start(), loop).result(timeout=10)
            yield fake
        finally:
            asyncio.run_coroutine_threadsafe(fake.close(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()

    # --- handlers ------------------------------------------------------------------------------

    async def _apply_fault(self, endpoint: Endpoint) -> web.Response | None:
        with self._lock:
            queue = self._faults[endpoint]
            fault = queue[0] if queue else None
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    queue.pop(0)
        if fault is None:
            return None
        if fault.delay_s and self._closing is not None:
            try:
                await asyncio.wait_for(self._closing.wait(), fault.delay_s)
            except asyncio.TimeoutError:
                pass
        if fault.status is None and fault.body is None:
            return None
        return web.Response(status=fault.status or 200, text=fault.body or "", content_type="application/json")

    def _record(self, endpoint: Endpoint, request: web.Request) -> None:
        with self._lock:
            self.requests.append(RecordedRequest(endpoint, request.path, dict(request.query)))

    async def _handle_search(self, request: web.Request) -> web.Response:
        self._record("geocoding", request)
        faulted = await self._apply_fault("geocoding")
        if faulted is not None:
            return faulted
        name = request.query.get("name")
        if name is None:
            return _error("Value of type 'String' required for key 'name'.")
        try:
            count = int(request.query.get("count", "10"))
        except ValueError:
            return _error("Value of type 'Int' required for key 'count'.")
        if not 1 <= count <= 100:
            return _error("Parameter count must be between 1 and 100.")
        wanted = name.strip().casefold()
        if len(wanted) < 2:
            found: list[dict[str, Any]] = []
        elif len(wanted) == 2:
            found = [p for p in self.places if p["name"].casefold() == wanted]
        else:
            found = [p for p in self.places if p["name"].casefold().startswith(wanted)]
        found.sort(key=lambda p: -p.get("population", 0))
        body: dict[str, Any] = {"generationtime_ms": 0.61}
        if found:  # like the real API, no "results" key at all when nothing matches
            body = {"results": found[:count], **body}
        return web.json_response(body)

    async def _handle_forecast(self, request: web.Request) -> web.Response:
        self._record("forecast", request)
        faulted = await self._apply_fault("forecast")
        if faulted is not None:
            return faulted
        query = request.query
        try:
            latitude = float(query["latitude"])
            longitude = float(query["longitude"])
        except KeyError as exc:
            return _error(f"Value of type 'Float' required for key '{exc.args[0]}'.")
        except ValueError:
            return _error("Value of type 'Float' required for key 'latitude'.")
        if not -90 <= latitude <= 90:
            return _error(f"Latitude must be in range of -90 to 90°. Given: {latitude}.")
        if not -180 <= longitude <= 180:
            return _error(f"Longitude must be in range of -180 to 180°. Given: {longitude}.")
        try:
            days = int(query.get("forecast_days", "7"))
        except ValueError:
            return _error("Value of type 'Int' required for key 'forecast_days'.")
        if not 0 <= days <= 16:
            return _error("Forecast days is invalid. Allowed range 0 to 16.")
        current = _split(query.get("current"))
        daily = _split(query.get("daily"))
        for key, names, known, kind in (("current", current, CURRENT_UNITS, "ForecastVariable"),
                                        ("daily", daily, DAILY_UNITS, "ForecastVariableDaily")):
            for var in names:
                if var not in known:
                    return _error(f"Cannot initialize {kind} from invalid String value {var} for key {key}")

        tz = query.get("timezone", "GMT")
        if tz == "auto":
            tz = self._nearest_timezone(latitude, longitude)
        offset, abbreviation = UTC_OFFSETS.get(tz, (0, "GMT"))
        body: dict[str, Any] = {
            "latitude": round(latitude, 2), "longitude": round(longitude, 2), "generationtime_ms": 0.08,
            "utc_offset_seconds": offset, "timezone": tz, "timezone_abbreviation": abbreviation,
            "elevation": 42.0,
        }
        if current:
            body["current_units"] = {"time": "iso8601", "interval": "seconds",
                                     **{v: CURRENT_UNITS[v] for v in current}}
            body["current"] = {"time": f"{self.today.isoformat()}T12:00", "interval": 900,
                               **{v: _current_value(v, latitude) for v in current}}
        if daily:
            dates = [self.today + timedelta(days=i) for i in range(days)]
            body["daily_units"] = {"time": "iso8601", **{v: DAILY_UNITS[v] for v in daily}}
            body["daily"] = {"time": [d.isoformat() for d in dates],
                             **{v: [_daily_value(v, latitude, d, i) for i, d in enumerate(dates)] for v in daily}}
        return web.json_response(body)

    def _nearest_timezone(self, latitude: float, longitude: float) -> str:
        near = [p for p in self.places
                if math.hypot(p["latitude"] - latitude, p["longitude"] - longitude) < 0.5]
        return near[0]["timezone"] if near else "GMT"


def _error(reason: str) -> web.Response:
    # Open-Meteo's real error shape for bad parameters.
    return web.json_response({"error": True, "reason": reason}, status=400)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _base_temperature(latitude: float) -> float:
    return 28.0 - abs(latitude) * 0.3


def _current_value(var: str, latitude: float) -> Any:
    base = _base_temperature(latitude)
    return {
        "temperature_2m": round(base + 2.1, 1), "apparent_temperature": round(base + 1.4, 1),
        "relative_humidity_2m": 64, "precipitation": 0.0, "rain": 0.0, "weather_code": WEATHER_CYCLE[0],
        "cloud_cover": 40, "wind_speed_10m": 14.8, "wind_direction_10m": 310, "wind_gusts_10m": 31.0,
        "is_day": 1, "pressure_msl": 1016.2,
    }[var]


def _daily_value(var: str, latitude: float, day: date, i: int) -> Any:
    base = _base_temperature(latitude)
    code = WEATHER_CYCLE[i % len(WEATHER_CYCLE)]
    wet = code >= 51
    return {
        "weather_code": code,
        "temperature_2m_max": round(base + 5 - (i % 3), 1),
        "temperature_2m_min": round(base - 4 + (i % 2), 1),
        "apparent_temperature_max": round(base + 4, 1),
        "apparent_temperature_min": round(base - 5, 1),
        "precipitation_sum": 4.2 if wet else 0.0,
        "precipitation_probability_max": 75 if wet else 5,
        "wind_speed_10m_max": round(18.0 + i, 1),
        "sunrise": f"{day.isoformat()}T06:12",
        "sunset": f"{day.isoformat()}T21:03",
        "uv_index_max": 7.5,
    }[var]
