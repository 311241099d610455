"""A newcomer's first seconds: how soon a fresh server shows the Home title and the real navigation.

Each round starts a fresh server (`streamlit run streamlit_app.py`, headless on 127.0.0.1, the shipped
pretrained runs and an empty user store) and opens `/` in a fresh Chromium context (Playwright, Debian's
/usr/bin/chromium), as someone would right after `make run`. A script injected before the page's own records,
in ms since navigation start, when the first h1 and the first sidebar navigation link became visible, and
every navigation text shown (a file name there, such as "streamlit app", would be Streamlit's legacy mode).
The reference, measured the same way in the same run, is a one-line app (`st.title`) on the same Streamlit:
the floor of a server's first paint on this machine; the ratio says what the app adds to it.

Then, on a server whose Home is drawn, each page is opened from the sidebar as a visitor would, once ("first
open", which pays for the page's imports; pages in sidebar order, after `--dwell` seconds on Home) and again
("again"), and the time from the click to the page's title is printed; the first opens are measured again on
a server with the background warm-up of torch (app/components/warmup.py) switched off.

    python bench/cold_start.py               # 5 fresh servers, then the pages
    python bench/cold_start.py --rounds 2    # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.components.warmup import WARMUP_ENV  # noqa: E402
from bench.machine import cpu_model  # noqa: E402
from tests.browser import chromium_browser, first_paint, new_page, streamlit_server, watch_first_paint  # noqa: E402

TITLE = "mnist-studio"
PAGES = {"train": "Train", "data": "Data", "evaluate": "Evaluate", "predict": "Predict", "compare": "Compare",
         "experiments": "Experiments"}
NAVIGATION = ["Home", *PAGES.values()]
REFERENCE_APP = 'import streamlit as st\n\nst.title("reference")\n'
TIMEOUT_MS = 120_000

# Clicks the sidebar link to `path` and resolves with the ms from the click until an h1 starting with `title`.
CLICK_TO_TITLE = """
([path, title]) => new Promise((resolve) => {
  const start = performance.now();
  const found = () => [...document.querySelectorAll("h1")].some((e) => e.textContent.trim().startsWith(title)
                                                                      && e.getClientRects().length > 0);
  const observer = new MutationObserver(() => {
    if (found()) { observer.disconnect(); resolve(performance.now() - start); }
  });
  observer.observe(document, {subtree: true, childList: true, characterData: true});
  [...document.querySelectorAll('[data-testid="stSidebarNav"] a')]
    .find((a) => new URL(a.href).pathname.replace(/^\\/+|\\/+$/g, "") === path).click();
})
"""



def first_visit(browser, env: dict[str, str], script: Path | None = None) -> dict:
    """Start a fresh server, open `/` in a fresh context; the first-paint record (ms since navigation start)."""
    with streamlit_server(env, script=script) as url:
        page = new_page(browser)
        try:
            watch_first_paint(page)
            page.goto(url)
            done = "window.__firstPaint.h1_ms !== null"
            if script is None:  # the app: its navigation too (the reference has none)
                done += " && window.__firstPaint.nav_ms !== null"
            page.wait_for_function(done, timeout=TIMEOUT_MS)
            return first_paint(page)
        finally:
            page.context.close()


def page_times(browser, env: dict[str, str], dwell: float) -> dict[str, tuple[float, float]]:
    """{page: (ms to its title on the first open, ms on the second)} on a server whose Home is drawn."""
    times = {}
    with streamlit_server(env) as url:
        page = new_page(browser)
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.get_by_role("heading", name=TITLE).wait_for()
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Train").wait_for()
        time.sleep(dwell)
        for path, title in PAGES.items():
            first = page.evaluate(CLICK_TO_TITLE, [path, title])
            page.evaluate(CLICK_TO_TITLE, ["", TITLE])  # back to Home
            again = page.evaluate(CLICK_TO_TITLE, [path, title])
            page.evaluate(CLICK_TO_TITLE, ["", TITLE])
            times[path] = (first, again)
        page.context.close()
    return times


def torch_import_seconds() -> float:
    """Seconds a fresh interpreter takes to `import torch` here (what the first visit used to wait for)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.perf_counter() - start


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values) / 1000:.2f} s, max {max(values) / 1000:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="fresh servers for the app (and for the reference)")
    parser.add_argument("--dwell", type=float, default=5.0, help="seconds on Home before the first page is opened")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cold_start.json")
    args = parser.parse_args()

    import streamlit

    print(f"# Cold start ({cpu_model()}, {os.cpu_count()} cores, Streamlit {streamlit.__version__}, "
          f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.1f})", flush=True)
    torch_s = torch_import_seconds()
    print(f"`import torch` in a fresh interpreter: {torch_s:.2f} s", flush=True)
    with tempfile.TemporaryDirectory() as tmp, chromium_browser() as browser:
        env = {"MNIST_STUDIO_RUNS": str(Path(tmp) / "runs")}
        reference_script = Path(tmp) / "reference_app.py"
        reference_script.write_text(REFERENCE_APP)
        app, reference, shown = [], [], set()
        for n in range(args.rounds):  # alternate, so both see the same machine
            reference.append(first_visit(browser, env, reference_script)["h1_ms"])
            record = first_visit(browser, env)
            if record["h1"] != TITLE:
                print(f"round {n + 1}: the first title was {record['h1']!r}, not {TITLE!r}")
                return 1
            app.append(record)
            shown.update(record["nav_texts"])
            print(f"round {n + 1}: title {record['h1_ms'] / 1000:.2f} s, navigation {record['nav_ms'] / 1000:.2f} s "
                  f"(reference title {reference[-1] / 1000:.2f} s)", flush=True)
        titles = [r["h1_ms"] for r in app]
        navs = [r["nav_ms"] for r in app]
        print(f"\nFresh server, `/` opened ({args.rounds} rounds):")
        print(f"  Home title:        {summary(titles)}")
        print(f"  navigation links:  {summary(navs)}")
        print(f"  reference title:   {summary(reference)} (a one-line st.title app)")
        print(f"  app / reference:   {statistics.median(titles) / statistics.median(reference):.2f}x (medians)")
        legacy = sorted(shown - set(NAVIGATION))
        print(f"  navigation shown:  {', '.join(sorted(shown))}; "
              + (f"NOT page titles: {', '.join(legacy)}" if legacy else "only page titles"), flush=True)

        pages = page_times(browser, env, args.dwell)
        cold_pages = page_times(browser, {**env, WARMUP_ENV: "0"}, args.dwell)
        print(f"\nWarm server (Home drawn, {args.dwell:.0f} s on it), a sidebar click to the page's title:")
        print("| page | first open | again | first open, no warm-up |\n|---|---:|---:|---:|")
        for path, (first, again) in pages.items():
            print(f"| {PAGES[path]} | {first / 1000:.2f} s | {again / 1000:.2f} s | "
                  f"{cold_pages[path][0] / 1000:.2f} s |")

    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": cpu_model(), "cores": os.cpu_count(), "torch_import_s": torch_s,
                                    "title_ms": titles, "nav_ms": navs, "reference_title_ms": reference,
                                    "navigation_shown": sorted(shown), "dwell_s": args.dwell,
                                    "pages_ms": pages, "pages_no_warmup_ms": cold_pages}, indent=1))
    return 1 if legacy else 0


if __name__ == "__main__":
    sys.exit(main())
