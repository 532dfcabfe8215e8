"""Services start-up: documents embedded by another model are moved to the configured one."""
from __future__ import annotations

from bot.config import load_settings
from bot.services import Services
from bot.store.sqlite import SqliteStore
from knowledge.embed import LocalEmbedder
from knowledge.ingest import ingest_bytes
from knowledge.search import search
from tests.knowledge.test_store import HashEmbedder


async def test_start_up_re_embeds_documents_from_another_embedder(tmp_path):
    db = tmp_path / "r.db"
    store = SqliteStore(db)
    doc = await ingest_bytes(store, HashEmbedder("hash-old", 64), data=b"Holidays: twenty-five vacation days a year.",
                       filename="handbook.txt", mimetype="text/plain", scope="workspace", uploaded_by="U1")
    await store.close()

    settings = load_settings(THREADBOT_DB=str(db), ANTHROPIC_API_KEY="sk-ant-test")
    services = await Services.create(settings)
    try:
        assert services.reembedding is not None
        assert await services.reembedding == 1
        stored = await services.store.knowledge_document(doc.document_id)
        assert (stored.embedding_model, stored.embedding_dim) == (LocalEmbedder.model, LocalEmbedder.dim)
        hits = await search(services.store, LocalEmbedder(), "how many vacation days", scopes=["workspace"], mode="vector")
        assert [h.document_id for h in hits] == [doc.document_id]
    finally:
        await services.aclose()


async def test_nothing_to_re_embed_starts_no_work(tmp_path):
    services = await Services.create(load_settings(THREADBOT_DB=str(tmp_path / "e.db"), ANTHROPIC_API_KEY="k"))
    try:
        assert services.reembedding is None
    finally:
        await services.aclose()
