"""Real-browser test support: a headless Streamlit server on 127.0.0.1 and Debian's Chromium via Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import REPO, require_or_skip

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(env: dict[str, str], timeout: float = 60.0, script: Path | None = None,
                     options: tuple[str, ...] = ()):
    """Start `streamlit run streamlit_app.py` (or `script`) headless on 127.0.0.1 with `env` and extra command-line
    `options` (e.g. ("--secrets.files", PATH)); yields the base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(script or REPO / "streamlit_app.py"),
           "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", *options]
    log = open(Path(env.get("MNIST_STUDIO_RUNS", "/tmp")).parent / f"streamlit-{port}.log", "w")
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not start; see {log.name}")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()


def require_chromium() -> None:
    """Skip (fail in CI) unless Debian's Chromium and Playwright are installed; starts no browser."""
    require_or_skip(Path(CHROMIUM).exists() or shutil.which("chromium") is not None,
                    "Debian's chromium is not installed (apt-get install -y chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        require_or_skip(False, "playwright is not installed")


@contextmanager
def chromium_browser():
    """A headless Playwright browser in Debian's Chromium (skipped outside CI when either is missing)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                                    args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, viewport=(1400, 1000)):
    """A page in a fresh context (empty cache and storage), as a first-time visitor has."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.set_default_timeout(30_000)
    return page


@contextmanager
def chromium_page(viewport=(1400, 1000)):
    """A Playwright page in Debian's Chromium (skipped outside CI when either is missing)."""
    with chromium_browser() as browser:
        yield new_page(browser, viewport)


# Runs in the page before any of its scripts: records, in ms since navigation start, when the first h1 and the
# first sidebar navigation link appeared, and every text the sidebar navigation ever showed.
FIRST_PAINT_WATCH = """
window.__firstPaint = {h1: null, h1_ms: null, nav_ms: null, nav_texts: []};
new MutationObserver(() => {
  const seen = window.__firstPaint;
  const visible = (e) => e.getClientRects().length > 0;
  if (seen.h1_ms === null) {
    const h1 = [...document.querySelectorAll("h1")].find((e) => visible(e) && e.textContent.trim());
    if (h1) { seen.h1_ms = performance.now(); seen.h1 = h1.textContent.trim(); }
  }
  for (const link of document.querySelectorAll('[data-testid="stSidebarNav"] a')) {
    const icon = link.querySelector('[data-testid="stIconEmoji"]');
    const text = link.textContent.replace(icon ? icon.textContent : "", "").trim();
    if (text && visible(link)) {
      if (seen.nav_ms === null) seen.nav_ms = performance.now();
      if (!seen.nav_texts.includes(text)) seen.nav_texts.push(text);
    }
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


def stroke(page, origin: dict, points: list[tuple[float, float]], steps: int = 12) -> None:
    """One mouse stroke through `points` (pixels from `origin`, e.g. a canvas's bounding box), as a person draws."""
    x0, y0 = origin["x"], origin["y"]
    page.mouse.move(x0 + points[0][0], y0 + points[0][1])
    page.mouse.down()
    for (ax, ay), (bx, by) in zip(points, points[1:], strict=False):
        for i in range(1, steps + 1):
            page.mouse.move(x0 + ax + (bx - ax) * i / steps, y0 + ay + (by - ay) * i / steps)
    page.mouse.up()


def watch_first_paint(page) -> None:
    """Record the page's first h1 and sidebar navigation from its next navigation on (see first_paint)."""
    page.add_init_script(FIRST_PAINT_WATCH)


def first_paint(page) -> dict:
    """{h1, h1_ms, nav_ms, nav_texts} recorded by watch_first_paint; times in ms since navigation start."""
    return page.evaluate("window.__firstPaint")
