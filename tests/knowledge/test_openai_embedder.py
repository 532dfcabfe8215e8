"""The OpenAI embedder through the real SDK against a loopback /v1/embeddings."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.store.sqlite import SqliteStore
from knowledge.embed import OpenAIEmbedder, embed_async
from knowledge.errors import EmbedderUnavailable
from knowledge.ingest import ingest_bytes, reembed
from knowledge.search import search
from tests.fakes.openai_embeddings import FakeOpenAIEmbeddings


@pytest.fixture
async def fake():
    server = await FakeOpenAIEmbeddings().start()
    yield server
    await server.stop()


async def test_shortened_dimensions_are_requested_and_normalised(fake: FakeOpenAIEmbeddings) -> None:
    embedder = OpenAIEmbedder(api_key="sk-test", base_url=fake.base_url, batch_size=2)
    vectors = await embed_async(embedder, ["alpha beta", "beta gamma", "delta"])
    assert embedder.model == "text-embedding-3-small@384" and embedder.dim == 384
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert [c["input"] for c in fake.calls] == [["alpha beta", "beta gamma"], ["delta"]]
    assert all(c["model"] == "text-embedding-3-small" and c["dimensions"] == 384 for c in fake.calls)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


async def test_native_dimensions_and_base_url_from_the_environment(
    fake: FakeOpenAIEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    embedder = OpenAIEmbedder(dimensions=None)
    vectors = await embed_async(embedder, ["hello"])
    assert (embedder.model, embedder.dim, vectors.shape) == ("text-embedding-3-small", 1536, (1, 1536))
    assert "dimensions" not in fake.calls[0]


@pytest.mark.parametrize("status", [401, 500])
async def test_service_errors_become_embedder_unavailable(fake: FakeOpenAIEmbeddings, status: int) -> None:
    fake.fail_with = status if status != 401 else None
    key = "sk-wrong" if status == 401 else "sk-test"
    embedder = OpenAIEmbedder(api_key=key, base_url=fake.base_url, max_retries=0)
    with pytest.raises(EmbedderUnavailable) as info:
        await embed_async(embedder, ["x"])
    assert "embeddings service failed" in info.value.user_message()
    assert "sk-" not in info.value.user_message()


async def test_ingest_and_search_with_openai_then_switch_back(fake: FakeOpenAIEmbeddings, tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "kb.db")
    embedder = OpenAIEmbedder(api_key="sk-test", base_url=fake.base_url)
    result = await ingest_bytes(
        store, embedder, data=b"Parking permits are issued by facilities.", filename="parking.txt",
        mimetype="text/plain", scope="workspace", uploaded_by="U1",
    )
    assert result.embedding_model == "text-embedding-3-small@384"
    hits = await search(store, embedder, "parking permits", scopes=["workspace"], k=1, mode="vector")
    assert [h.document_id for h in hits] == [result.document_id]
    native = OpenAIEmbedder(api_key="sk-test", base_url=fake.base_url, dimensions=None)
    assert await search(store, native, "parking permits", scopes=["workspace"], mode="vector") == []
    import asyncio

    assert await reembed(store, native) == 1
    hits = await search(store, native, "parking permits", scopes=["workspace"], k=1, mode="vector")
    assert [h.document_id for h in hits] == [result.document_id]
    assert (await store.knowledge_document(result.document_id)).embedding_dim == 1536
    await store.close()


async def test_hybrid_search_falls_back_to_bm25_when_embeddings_fail(fake: FakeOpenAIEmbeddings, tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "kb.db")
    embedder = OpenAIEmbedder(api_key="sk-test", base_url=fake.base_url, max_retries=0)
    result = await ingest_bytes(
        store, embedder, data=b"Badges are printed at reception.", filename="badges.txt", mimetype=None,
        scope="workspace", uploaded_by="U1",
    )
    fake.fail_with = 503
    hits = await search(store, embedder, "where are badges printed", scopes=["workspace"], k=3)
    assert [h.document_id for h in hits] == [result.document_id]
    with pytest.raises(EmbedderUnavailable):
        await search(store, embedder, "badges", scopes=["workspace"], mode="vector")
    await store.close()
