"""Ingestion throughput (chunks/s) and peak memory while ingesting a generated 50 MB text file,
streamed through the real ingest_path (parse → chunk → spill → embed → batched write), and how long
the event loop is held: the longest write batch (each runs on the loop), and the longest a
concurrent claim_event (what the loop does for every Slack event) waited, during the write and
during the whole ingest (parsing and embedding run in worker threads).

    .venv/bin/python bench/ingest.py [--mb 50] [--sample 256] [--no-model]

Embedding 50 MB (~75k chunks) with the local model takes hours on two cores, so the full file runs
with a fast hashing stand-in embedder (measuring everything except the model), and the local model's
own rate is measured on a sample of the same chunks; the projected wall time combines the two.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.store.sqlite import SqliteStore  # noqa: E402
from knowledge.ingest import Progress, ingest_path  # noqa: E402
from tests.store_rows import knowledge_total_rows  # noqa: E402


class HashEmbedder:
    """Bag of hashed words, ~100x faster than the model: isolates the pipeline's own cost."""

    model = "hash-bench"
    dim = 384
    window = 256

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text[:2000]):
                out[row, hash(word) % self.dim] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def current_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def generate(path: Path, megabytes: int, data: Path) -> None:
    """Paragraphs of real English sentences (SciFact abstracts) with Markdown-free plain text."""
    if (data / "corpus.jsonl").exists():
        sentences = [s.strip() + "." for line in (data / "corpus.jsonl").open()
                     for s in json.loads(line)["text"].split(". ") if len(s) > 20][:20_000]
    else:
        sentences = [f"Sentence number {i} talks about topic {i % 97} and detail {i % 13}." for i in range(20_000)]
    rng = np.random.default_rng(3)
    target = megabytes * 1024 * 1024
    written = 0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            paragraph = " ".join(sentences[i] for i in rng.integers(0, len(sentences), 6)) + "\n\n"
            out.write(paragraph)
            written += len(paragraph.encode())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--sample", type=int, default=256, help="chunks embedded with the local model")
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--no-model", action="store_true", help="skip the local model's sample")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "big.txt"
        generate(source, args.mb, args.data)
        size_mb = source.stat().st_size / 1_048_576
        store = SqliteStore(Path(tmp) / "bench.db")
        baseline = current_rss_mb()
        stages: dict[str, float] = {}
        started = time.perf_counter()

        writing = asyncio.Event()
        finished = asyncio.Event()

        def progress(p: Progress) -> None:
            if p.stage == "indexing" and p.done == 0:
                stages["chunked"] = time.perf_counter() - started
            if p.stage == "indexing" and p.done == p.total:
                stages["embedded"] = time.perf_counter() - started
                writing.set()

        # Each write batch is one transaction on the event loop: time them.
        holds: list[float] = []
        write_chunks = store.knowledge_write_chunks

        async def timed_batch(*args) -> int:
            t = time.perf_counter()
            written = await write_chunks(*args)
            holds.append(time.perf_counter() - t)
            return written

        store.knowledge_write_chunks = timed_batch  # type: ignore[method-assign]
        waits: list[float] = []  # while the file is written
        stalls: list[float] = []  # over the whole ingest

        async def event_loop_work() -> None:
            # A claim due every 5 ms: how late it is answered is how long the loop was held.
            n = 0
            due = time.perf_counter()
            while not finished.is_set():
                await store.claim_event(f"bench-{n}")
                late = time.perf_counter() - due
                (waits if writing.is_set() else stalls).append(late)
                n += 1
                due = time.perf_counter() + 0.005
                await asyncio.sleep(0.005)

        prober = asyncio.create_task(event_loop_work())
        try:
            result = await ingest_path(store, HashEmbedder(), source, scope="workspace", progress=progress)
        finally:
            finished.set()
            await prober
        stalls.extend(waits)
        total_s = time.perf_counter() - started
        peak = peak_rss_mb()
        rows = knowledge_total_rows(store)
        print(f"{size_mb:.1f} MB text file, streamed: {result.chunks:,} chunks "
              f"({rows['fts']:,} FTS rows, {rows['vectors']:,} vectors)")
        print(f"  parse + chunk (WordPiece)   {stages['chunked']:7.1f} s   {result.chunks / stages['chunked']:8,.0f} chunks/s"
              f"   {size_mb / stages['chunked']:.2f} MB/s")
        embed_s = stages["embedded"] - stages["chunked"]
        write_s = total_s - stages["embedded"]
        print(f"  embed (hash stand-in)       {embed_s:7.1f} s   {result.chunks / embed_s:8,.0f} chunks/s")
        print(f"  write (batched)             {write_s:7.1f} s   {result.chunks / write_s:8,.0f} chunks/s")
        print(f"  loop held per write batch   longest {max(holds) * 1000:.0f} ms, median "
              f"{sorted(holds)[len(holds) // 2] * 1000:.0f} ms over {len(holds)} batches")
        print(f"  concurrent claim_event      {len(waits)} calls during the write, longest wait "
              f"{max(waits, default=0) * 1000:.0f} ms; {len(stalls)} over the whole ingest, longest wait "
              f"{max(stalls, default=0) * 1000:.0f} ms")
        print(f"  whole pipeline              {total_s:7.1f} s   {result.chunks / total_s:8,.0f} chunks/s")
        print(f"  peak RSS {peak:.0f} MB (process baseline {baseline:.0f} MB): growth {peak - baseline:.0f} MB = "
              f"{(peak - baseline) / size_mb:.2f}x the file size (reading it whole as str would hold >= 1x)")
        await store.close()
        if args.no_model:
            return

        from knowledge.chunk import embedding_text
        from knowledge.embed import LocalEmbedder

        with source.open(encoding="utf-8") as stream:
            from knowledge.chunk import chunk_blocks
            from knowledge.parse import parse_lines, read_lines

            sample = []
            for chunk in chunk_blocks(parse_lines("text", read_lines(stream))):
                sample.append(embedding_text(chunk.text, title="big.txt", section=None))
                if len(sample) == args.sample:
                    break
        local = LocalEmbedder()
        local.embed(sample[:2])
        t = time.perf_counter()
        for start in range(0, len(sample), 64):
            local.embed(sample[start:start + 64])
        rate = len(sample) / (time.perf_counter() - t)
        projected = result.chunks / rate + total_s - embed_s
        print(f"\nlocal all-MiniLM-L6-v2 on {len(sample)} of these chunks: {rate:.1f} chunks/s "
              f"(pipeline without the model is {result.chunks / (total_s - embed_s) / rate:,.0f}x faster)")
        print(f"projected local ingest of the {size_mb:.0f} MB file: {projected / 60:.0f} min "
              f"({result.chunks / projected:.1f} chunks/s overall); peak RSS with the model loaded {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    asyncio.run(main())
