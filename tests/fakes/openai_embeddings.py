"""A loopback stand-in for OpenAI's POST /v1/embeddings (auth, `dimensions`, error shapes, call log)."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

NATIVE_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


def fake_vector(text: str, dimensions: int) -> list[float]:
    """Deterministic vector: hashed word counts, so texts sharing words are close (like a real model)."""
    vector = np.zeros(dimensions, dtype=np.float64)
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[int.from_bytes(digest[:4], "little") % dimensions] += 1.0
    # Not normalised: the real API returns unit vectors, the client must not rely on it.
    return (vector * 3.0 + 0.01).tolist()


@dataclass
class FakeOpenAIEmbeddings:
    api_key: str = "sk-test"
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None  # answer every request with this HTTP status (500, 429, 401…)
    base_url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> "FakeOpenAIEmbeddings":
        app = web.Application()
        app.router.add_post("/v1/embeddings", self._embeddings)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _embeddings(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        body = await request.json()
        self.calls.append(body)
        if self.fail_with is not None:
            return _error(self.fail_with, "The server had an error.", "server_error", None)
        model = body.get("model")
        if model not in NATIVE_DIMENSIONS:
            return _error(404, f"The model `{model}` does not exist.", "invalid_request_error", "model_not_found")
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or any(not isinstance(t, str) or not t for t in inputs):
            return _error(400, "'input' must be a non-empty string or array of non-empty strings.",
                          "invalid_request_error", None)
        dimensions = body.get("dimensions") or NATIVE_DIMENSIONS[model]
        tokens = sum(len(t.split()) for t in inputs)
        return web.json_response({
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": fake_vector(text, dimensions)}
                for i, text in enumerate(inputs)
            ],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })


def _error(status: int, message: str, kind: str, code: str | None) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": kind, "param": None, "code": code}}, status=status
    )
