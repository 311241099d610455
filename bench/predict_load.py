"""Predict under load: N real browser sessions upload a picture to the Predict page at the same moment.

A headless Streamlit server on 127.0.0.1 serves the app with the shipped pretrained runs; Debian's Chromium
(Playwright) opens N browser contexts (separate sessions, like N people), each on the Predict page in upload
mode. Behind a barrier all N upload at once, each a different photo of a handwritten 7 (so no cache answers
for another session); the latency is from the upload to the predicted class being shown in that browser.
Every request is bounded (--timeout). Prints how many were answered, p50/p95/max latency and how many read 7.

    python bench/predict_load.py                 # 20 sessions
    python bench/predict_load.py --sessions 5    # a quick check
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.browser import CHROMIUM, CHROMIUM_ARGS, streamlit_server  # noqa: E402


def seven_photo(seed: int) -> bytes:
    """A PNG of a dark 7 on light paper, its size, place, slant and stroke drawn at random."""
    rng = random.Random(seed)
    img = Image.new("RGB", (320, 260), tuple(rng.randint(200, 240) for _ in range(3)))
    x, y, w, h = rng.randint(40, 110), rng.randint(20, 60), rng.randint(90, 150), rng.randint(140, 190)
    slant = rng.randint(-15, 25)
    ink = tuple(rng.randint(10, 60) for _ in range(3))
    ImageDraw.Draw(img).line([(x, y), (x + w, y), (x + w // 2 - slant, y + h)], fill=ink, width=rng.randint(10, 18))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


async def one_session(browser, url: str, seed: int, start: asyncio.Event, ready: list, timeout_s: float) -> dict:
    """Open the Predict page, wait for the go signal, upload, and time the answer."""
    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(timeout_s * 1000)
    try:
        await page.goto(f"{url}/predict")
        await page.get_by_text("Upload images").click()
        uploader = page.locator('input[type="file"]')
        await uploader.wait_for(state="attached")
        ready.append(seed)
        await start.wait()
        began = time.perf_counter()
        await uploader.set_input_files(files=[{"name": f"seven-{seed}.png", "mimeType": "image/png",
                                               "buffer": seven_photo(seed)}])
        value = page.get_by_test_id("stMetricValue").first
        await value.wait_for()
        answer = (await value.inner_text()).strip()
        return {"seconds": time.perf_counter() - began, "answer": answer}
    except Exception as err:  # a failed or timed-out session is reported, not raised
        return {"seconds": None, "error": f"{type(err).__name__}: {str(err).splitlines()[0]}"}
    finally:
        await context.close()


async def run_load(url: str, sessions: int, timeout_s: float) -> tuple[list[dict], float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            start, ready = asyncio.Event(), []
            tasks = [asyncio.create_task(one_session(browser, url, seed, start, ready, timeout_s))
                     for seed in range(sessions)]
            deadline = time.time() + timeout_s
            while len(ready) < sessions and time.time() < deadline and not all(t.done() for t in tasks):
                await asyncio.sleep(0.1)
            began = time.perf_counter()
            start.set()
            results = await asyncio.gather(*tasks)
            return results, time.perf_counter() - began
        finally:
            await browser.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds allowed per session")
    args = parser.parse_args()
    if not (REPO / "checkpoints" / "pretrained" / "mnist-fast" / "best.pt").is_file():
        print("needs the shipped pretrained runs (checkpoints/pretrained/mnist-fast)")
        return 2
    with tempfile.TemporaryDirectory() as tmp, streamlit_server({"MNIST_STUDIO_RUNS": str(Path(tmp) / "runs")}) as url:
        results, wall = asyncio.run(run_load(url, args.sessions, args.timeout))
    answered = [r for r in results if r["seconds"] is not None]
    for r in results:
        if "error" in r:
            print("  failed:", r["error"])
    print(f"{len(answered)} of {args.sessions} concurrent Predict uploads answered in {wall:.1f}s "
          f"(read as 7: {sum(r['answer'] == '7' for r in answered)})")
    if answered:
        times = [r["seconds"] for r in answered]
        print(f"| sessions | answered | p50 | p95 | max |\n|---|---|---|---|---|\n| {args.sessions} | "
              f"{len(answered)} | {statistics.median(times):.2f} s | {percentile(times, 0.95):.2f} s | "
              f"{max(times):.2f} s |")
    return 0 if len(answered) == args.sessions else 1


if __name__ == "__main__":
    sys.exit(main())
