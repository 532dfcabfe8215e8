"""Benchmark: preparing a 12-megapixel JPEG and a 4000x3000 PNG for the model, time per image and peak RSS.

The reference, measured in the same run on the same bytes, is Pillow's plain path: open, `Image.thumbnail`
to 1568 px, save in the source's format. Then the event loop's lag p99 while 10 image turns (prepare a 12 MP JPEG,
stream an answer from the loopback Claude fake) run at once (target < 50 ms), against the same turns decoding on
the loop thread. Ours additionally applies orientation, converts colour, caps the
pixel count, strips metadata and guarantees the 5 MB limit. Each measurement runs in a fresh process; peak RSS is the
growth of the process's high-water mark over its resident size before the work (Linux /proc).

    .venv/bin/python bench/images.py
"""
from __future__ import annotations

import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNS = 7


def make_images(folder: Path) -> dict[str, Path]:
    """A photo-like 12 MP JPEG and a 4000x3000 PNG (smooth areas plus noise, as photos and busy screenshots)."""
    from PIL import Image

    size = (4000, 3000)
    base = Image.linear_gradient("L").resize(size)
    channels = [base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT), Image.new("L", size, 110)]
    smooth = Image.merge("RGB", channels)
    noise = Image.merge("RGB", [Image.effect_noise(size, 40) for _ in range(3)])
    photo = Image.blend(smooth, noise, 0.25)
    paths = {"12 MP JPEG": folder / "photo.jpg", "4000x3000 PNG": folder / "shot.png"}
    photo.save(paths["12 MP JPEG"], "JPEG", quality=92)
    Image.blend(smooth, noise, 0.08).save(paths["4000x3000 PNG"], "PNG")
    return paths


def child(method: str, path: str) -> None:
    """Runs in its own process: prepares the file RUNS times, prints median seconds and peak RSS growth."""
    data = Path(path).read_bytes()
    from PIL import Image

    from bot.llm.images import prepare_image

    def plain() -> int:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
            image.thumbnail((1568, 1568))
            out = io.BytesIO()
            image.save(out, fmt)
            return len(out.getvalue())

    def ours() -> int:
        return len(prepare_image(data, Path(path).name).data)

    work = {"plain": plain, "ours": ours}[method]
    work()  # warm up (lazy imports, codec tables)
    # Reset the peak (Linux: writing 5 to clear_refs resets VmHWM), so the peak is the work's alone.
    Path("/proc/self/clear_refs").write_text("5")
    baseline_kb = _status_kb("VmRSS")
    times, size = [], 0
    for _ in range(RUNS):
        start = time.perf_counter()
        size = work()
        times.append(time.perf_counter() - start)
    peak_kb = _status_kb("VmHWM")
    print(json.dumps({"seconds": statistics.median(times), "rss_mb": (peak_kb - baseline_kb) / 1024,
                      "out_bytes": size}))


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(method: str, path: Path) -> dict[str, float]:
    result = subprocess.run([sys.executable, __file__, "--child", method, str(path)], check=True,
                            capture_output=True, text=True, cwd=ROOT)
    return json.loads(result.stdout)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(Path(tmp))
        print(f"{'image':<15} {'file MB':>8} {'method':<7} {'ms/image':>9} {'peak RSS MB':>12} {'out KB':>8}")
        for label, path in paths.items():
            results = {method: measure(method, path) for method in ("plain", "ours")}
            for method, r in results.items():
                print(f"{label:<15} {path.stat().st_size / 1e6:>8.1f} {method:<7} {r['seconds'] * 1000:>9.1f} "
                      f"{r['rss_mb']:>12.1f} {r['out_bytes'] / 1024:>8.0f}")
            ratio_t = results["ours"]["seconds"] / results["plain"]["seconds"]
            ratio_m = results["ours"]["rss_mb"] / max(results["plain"]["rss_mb"], 0.1)
            print(f"{label:<15} ours/plain: time x{ratio_t:.2f}, peak RSS x{ratio_m:.2f}")
        import asyncio

        asyncio.run(lag_benchmark(paths["12 MP JPEG"].read_bytes()))


# --- event-loop lag during concurrent image turns ------------------------------------------------------


async def _lag_during(turns, *, tick_s: float = 0.005) -> list[float]:
    """Run `turns` concurrently while a ticker measures how late the loop wakes it (seconds)."""
    import asyncio

    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            start = loop.time()
            await asyncio.sleep(tick_s)
            lags.append(max(0.0, loop.time() - start - tick_s))

    tick = asyncio.create_task(ticker())
    await asyncio.gather(*turns)
    done.set()
    await tick
    return lags


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else 0.0


async def lag_benchmark(jpeg: bytes, concurrent: int = 10) -> None:
    """10 image turns at once, each preparing a 12 MP JPEG and streaming a Claude answer from the fake,
    against the same turns preparing the image on the loop thread (what a blocking decode would cost)."""
    from bot.llm.anthropic import AnthropicProvider
    from bot.llm.images import prepare_image, prepare_image_async
    from bot.messages import ImageBlock, Message, ModelRequest, TextBlock
    from tests.fakes.anthropic import FakeAnthropic, Reply

    fake = FakeAnthropic(respond=lambda body: Reply.text("It shows a gradient. " * 20, token_delay_s=0.002))
    fake.start_in_thread()
    provider = AnthropicProvider(api_key=fake.api_key, base_url=fake.base_url, max_retries=0)

    ready = prepare_image(jpeg, "ready.jpg")

    async def turn(i: int, *, blocking: bool, decode: bool = True) -> None:
        if not decode:  # the baseline: the same turn with the image already prepared
            prepared = ready
        else:
            prepared = prepare_image(jpeg, f"{i}.jpg") if blocking else await prepare_image_async(jpeg, f"{i}.jpg")
        block = ImageBlock(name=prepared.name, media_type=prepared.media_type, sha256=prepared.sha256,
                           width=prepared.width, height=prepared.height, data=prepared.data)
        request = ModelRequest(model="claude-sonnet-4-6", system="Be brief.", max_tokens=256,
                               messages=[Message("user", [block, TextBlock("What is in this picture?")])])
        async for _ in provider.stream(request):
            pass

    try:
        await turn(0, blocking=False)  # warm up: SDK client, connection, codecs
        baseline = await _lag_during([turn(i, blocking=False, decode=False) for i in range(concurrent)])
        ours = await _lag_during([turn(i, blocking=False) for i in range(concurrent)])
        blocking = await _lag_during([turn(i, blocking=True) for i in range(concurrent)])
    finally:
        await provider.aclose()
        fake.stop_in_thread()
    print(f"\nevent-loop lag during {concurrent} concurrent image turns (ticker every 5 ms):")
    print(f"  off the loop (ours): p99 {p99(ours) * 1000:.1f} ms, max {max(ours) * 1000:.1f} ms "
          f"({'under' if p99(ours) < 0.05 else 'OVER'} the 50 ms target)")
    print(f"  no decoding at all (baseline: SDK, streaming, this machine): p99 {p99(baseline) * 1000:.1f} ms, "
          f"max {max(baseline) * 1000:.1f} ms")
    print(f"  decoding on the loop: p99 {p99(blocking) * 1000:.1f} ms, max {max(blocking) * 1000:.1f} ms")
    print(f"  ratio ours/on-loop p99: x{p99(ours) / max(p99(blocking), 1e-6):.3f}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
    else:
        main()
