"""Load: five browser sessions press Start on the Train page at the same moment, with two training slots.

A real Streamlit server on 127.0.0.1 and five Chromium contexts (five people); behind a barrier all five
click Start at once. Exactly two runs may train at any time, the rest queue and start first come first served,
none is lost or started twice, and all finish.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from core.store import runs
from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium, streamlit_server
from tests.test_launcher import no_orphans, state  # noqa: F401  (no_orphans: autouse clean-up)

pytestmark = pytest.mark.browser

SESSIONS = 5
SLOTS = 2
EPOCHS = 6  # on the tiny data: seconds each; the first two overlap since all five start (import torch) at once


async def ready_then_start(browser, url: str, name: str, go: asyncio.Event, ready: list) -> None:
    """Fill the Train form (epochs, run name), wait for the go signal, press Start, see it accepted."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(90_000)
    try:
        await page.goto(f"{url}/train")
        epochs = page.get_by_label("Epochs", exact=True)
        await epochs.fill(str(EPOCHS))
        await epochs.press("Enter")
        field = page.get_by_role("textbox", name="Run name (optional)")
        await field.fill(name)
        await field.press("Enter")
        start = page.get_by_role("button", name="Start training", exact=True)
        await start.wait_for()
        ready.append(name)
        await go.wait()
        await start.click()
        await page.get_by_text(f"Started {name}").wait_for()
    finally:
        await context.close()


async def five_at_once(url: str, names: list[str]) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            go, ready = asyncio.Event(), []
            tasks = [asyncio.create_task(ready_then_start(browser, url, n, go, ready)) for n in names]
            deadline = time.time() + 180
            while len(ready) < len(names) and time.time() < deadline and not any(t.done() for t in tasks):
                await asyncio.sleep(0.05)
            go.set()
            await asyncio.gather(*tasks)
        finally:
            await browser.close()


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most (start, end) intervals that cover one moment (an end before a start at the same time)."""
    edges = sorted([(end, -1) for _, end in intervals] + [(start, 1) for start, _ in intervals])
    count = most = 0
    for _, step in edges:
        count += step
        most = max(most, count)
    return most


def test_five_sessions_start_at_once_two_train_the_rest_queue_and_all_finish(store):
    require_chromium()  # skips (fails in CI) without Chromium and Playwright
    names = [f"load-{i}" for i in range(SESSIONS)]
    env = {"MNIST_STUDIO_RUNS": str(store), "MNIST_STUDIO_MAX_CONCURRENT": str(SLOTS)}
    with streamlit_server(env) as url:
        asyncio.run(five_at_once(url, names))
    paths = [store / n for n in names]
    assert all((p / "config.json").is_file() for p in paths)  # none lost
    assert all(runs.read_json(p / "config.json")["epochs"] == EPOCHS for p in paths)

    queued_seen = set()
    deadline = time.time() + 600
    while time.time() < deadline:
        states = [state(p) for p in paths]
        running = states.count("running")
        assert running <= SLOTS, states
        queued_seen |= {p.name for p, s in zip(paths, states, strict=True) if s == "queued"}
        if all(s == "completed" for s in states):
            break
        assert not set(states) - {"queued", "running", "completed"}, states
        time.sleep(0.05)
    else:
        raise AssertionError(f"not every run finished: {[state(p) for p in paths]}")

    statuses = [runs.read_json(p / "status.json") for p in paths]
    assert most_at_once([(s["started"], s["finished"]) for s in statuses]) == SLOTS  # both slots used, never more
    assert len(queued_seen) >= SESSIONS - SLOTS  # the others waited their turn
    queue_order = sorted(names, key=lambda n: (statuses[names.index(n)]["queued_at"], n))
    assert sorted(names, key=lambda n: statuses[names.index(n)]["started"]) == queue_order  # first come, first served
    for path in paths:  # each trained exactly once, to its full length
        events, _ = runs.read_metrics(path)
        assert [e["type"] for e in events].count("start") == 1, path
        assert [e["epoch"] for e in events if e["type"] == "epoch"] == list(range(1, EPOCHS + 1))
        assert runs.read_run(path).summary["epochs"] == EPOCHS
