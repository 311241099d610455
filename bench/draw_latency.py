"""Draw to answer in a real browser: from releasing the mouse on the Predict canvas to the probabilities on screen.

A server (`streamlit run streamlit_app.py`, headless on 127.0.0.1, the shipped pretrained runs and an empty user
store) and Debian's Chromium (Playwright) open the Predict page with its default MNIST models. Each round draws
one digit with the mouse (a single stroke: eight different digits in turn), waits for the page to finish,
then clears the canvas (the pad's Clear button). A script injected into the page takes every timestamp there
(`performance.now()`): the `pointerup` that ends the stroke, then the first animation frame after the DOM
shows every chosen model's prediction and confidence ("answer") and after every model's probability bars
are drawn ("bars", the headline figure), and when no script runs and the robustness probe's summary, the
last thing the page draws, is there ("page done": saliency, inside the network and the probe too).

The reference, measured the same way in the same run alternately with the app, is a one-page app with the
same canvas (the app's sketchpad, same size and settings) that echoes one number with a metric and ten
probability bars derived from the ink (the same HTML bars as the app's): the floor of a draw-to-answer round trip
through this Streamlit, canvas and browser on this machine. A second reference, the same app on
streamlit-drawable-canvas 0.13 (which the sketchpad replaced), shows what that canvas's 200 ms wait after each
stroke costs, in the same run.

    python bench/draw_latency.py                 # 24 rounds of each (2 blocks, each after 2 warm-up rounds)
    python bench/draw_latency.py --rounds 8      # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.machine import cpu_model  # noqa: E402
from tests.browser import chromium_browser, new_page, streamlit_server, stroke  # noqa: E402

TIMEOUT_MS = 120_000
TARGET_P50_MS, TARGET_P95_MS = 300.0, 500.0
APP_MODELS = 3  # the Predict page preselects the three most accurate pretrained runs
APP_LAST = "keeps its answer on"  # the robustness probe's summary, the last thing the Predict page draws

REFERENCE_APP = '''
import sys

import numpy as np
import streamlit as st

sys.path.insert(0, {repo!r})
from core.views.probability_bars import probability_bars_html

st.title("Reference")
{canvas}
ink = None if drawing is None else drawing[..., 0]
if ink is None or not ink.any():
    st.info("Draw something")
else:
    bands = ink.reshape(10, -1).mean(axis=1)
    probs = bands / bands.sum()
    st.metric("Prediction", int(np.argmax(probs)))
    st.caption(f"{{probs.max():.0%}} sure")
    st.html(probability_bars_html(probs.tolist(), [str(i) for i in range(10)], int(np.argmax(probs))))
'''


@dataclass(frozen=True)
class Canvas:
    """A drawing canvas as the bench meets it: the code that puts it in an app (setting `drawing`, RGBA or None),
    the element the mouse draws on, and the button that clears it (drawable-canvas shows its toolbar only while the
    canvas is hovered, so the bench hovers first)."""

    code: str
    selector: str
    clear: str


PAD = Canvas("from app.components.sketchpad import sketchpad\n"
             "drawing = sketchpad(280, 18, key=\"reference_canvas\")",
             "canvas.pad-canvas", "Clear the drawing")
# streamlit-drawable-canvas 0.13, which the pad replaced: it sends a stroke 200 ms after the mouse is released
DRAWABLE = Canvas("from streamlit_drawable_canvas import st_canvas\n"
                  "canvas = st_canvas(stroke_width=18, stroke_color=\"#FFFFFF\", background_color=\"#000000\", "
                  "height=280, width=280, drawing_mode=\"freedraw\", return_image_data=True, "
                  "key=\"reference_canvas\")\n"
                  "drawing = None if canvas.image_data is None else np.asarray(canvas.image_data)",
                  "canvas.upper-canvas", "Reset canvas & history")

# Runs in the page before its own scripts. arm(n, last) starts a round expecting n models; the record then holds,
# in ms of performance.now(), the stroke's pointerup, the frame after n predictions with confidence are in the DOM
# ("answer"), the frame after n charts have their bars ("bars") and when the script had stopped running with a
# caption holding `last` on screen ("done").
WATCH = """
(() => {
  const state = {n: 0, last: null, armed: false, up: null, answer: null, bars: null, done: null};
  window.__draw = state;
  state.arm = (n, last) => Object.assign(state, {n, last, armed: true, up: null, answer: null, bars: null,
                                                  done: null});
  const visible = (e) => e.getClientRects().length > 0;
  const fresh = (selector) => [...document.querySelectorAll(selector)]
    .filter((e) => visible(e) && !e.closest('[data-stale="true"]'));
  const frame = (field) => requestAnimationFrame(() => {
    if (state[field] === null) state[field] = performance.now();
  });
  let answerSeen = false, barsSeen = false;
  const check = () => {
    if (!state.armed || state.up === null) return;
    if (!answerSeen && fresh('[data-testid="stMetricValue"]').length >= state.n
        && fresh('[data-testid="stCaptionContainer"]').filter((e) => /% sure/.test(e.textContent)).length >= state.n) {
      answerSeen = true; frame("answer");
    }
    if (!barsSeen) {
      const charts = fresh('.prob-bars').slice(0, state.n);
      if (charts.length >= state.n && charts.every((c) => c.querySelectorAll(".prob-row").length === 10)) {
        barsSeen = true; frame("bars");
      }
    }
    const app = document.querySelector('[data-testid="stApp"]');
    const script = app ? app.getAttribute("data-test-script-state") : null;
    if (answerSeen && state.done === null && script !== "running"
        && (state.last === null || fresh('[data-testid="stCaptionContainer"]')
          .some((e) => e.textContent.includes(state.last)))) state.done = performance.now();
  };
  window.addEventListener("pointerup", () => {
    if (state.armed && state.up === null) { state.up = performance.now(); answerSeen = barsSeen = false; }
  }, true);
  new MutationObserver(check).observe(document, {subtree: true, childList: true, attributes: true,
                                                 characterData: true});
})();
"""

# Single-stroke digits as polylines in canvas pixels (280x280).
DIGITS = {
    "7": [(60, 50), (200, 50), (110, 240)],
    "1": [(140, 40), (140, 240)],
    "0": [(140, 40), (80, 80), (70, 160), (100, 230), (170, 235), (205, 160), (200, 80), (140, 40)],
    "2": [(70, 80), (110, 45), (180, 50), (200, 100), (80, 230), (215, 230)],
    "3": [(70, 60), (180, 50), (190, 110), (120, 135), (200, 170), (180, 230), (70, 225)],
    "6": [(190, 45), (100, 100), (70, 190), (120, 235), (190, 200), (180, 145), (90, 160)],
    "9": [(190, 100), (140, 50), (80, 80), (100, 140), (190, 110), (180, 240)],
    "8": [(180, 60), (140, 40), (90, 70), (180, 170), (140, 235), (90, 170), (180, 70)],
}


def wait_idle(page) -> None:
    """Until the script run has ended and the browser has had a moment to settle."""
    page.wait_for_function('document.querySelector(\'[data-testid="stApp"]\')'
                           '?.getAttribute("data-test-script-state") !== "running"', timeout=TIMEOUT_MS)
    page.wait_for_timeout(300)


def measure(browser, url: str, path: str, canvas_kind: Canvas, ready_text: str, models: int,
            last_text: str | None, rounds: int, warmup: int) -> list[dict]:
    """Draw `warmup + rounds` digits on the canvas at url/path; the records of the timed rounds. A round is done
    when the script has stopped and a caption holding `last_text` (when given) is on screen."""
    page = new_page(browser)
    page.set_default_timeout(TIMEOUT_MS)
    page.add_init_script(WATCH)
    page.goto(f"{url}/{path}")
    page.get_by_text(ready_text).first.wait_for()
    canvas = page.locator(canvas_kind.selector).first
    canvas.wait_for()
    wait_idle(page)
    box = canvas.bounding_box()
    records, names = [], list(DIGITS)
    for n in range(warmup + rounds):
        digit = names[n % len(names)]
        page.evaluate("([n, last]) => window.__draw.arm(n, last)", [models, last_text])
        stroke(page, box, DIGITS[digit], steps=8)
        page.wait_for_function("window.__draw.bars !== null && window.__draw.done !== null", timeout=TIMEOUT_MS)
        record = page.evaluate("({up: __draw.up, answer: __draw.answer, bars: __draw.bars, done: __draw.done})")
        shown = page.get_by_test_id("stMetricValue").first.inner_text().strip()
        if n >= warmup:
            records.append({"digit": digit, "shown": shown, **{k: record[k] - record["up"]
                                                               for k in ("answer", "bars", "done")}})
        wait_idle(page)
        canvas.hover()
        page.get_by_role("button", name=canvas_kind.clear).click()
        page.get_by_text(ready_text).first.wait_for()
        wait_idle(page)
    page.context.close()
    return records


def percentiles(values: list[float]) -> tuple[float, float]:
    p50, p95 = np.percentile(np.array(values), [50, 95])
    return float(p50), float(p95)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=24, help="timed digits drawn on each app")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed digits first in each block (imports, model loading: "
                             "each block opens a fresh browser context)")
    parser.add_argument("--blocks", type=int, default=2, help="alternate app and reference this many times")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "draw_latency.json")
    args = parser.parse_args()

    import streamlit

    load_start = os.getloadavg()[0]
    print(f"# Draw to answer in Chromium ({cpu_model()}, {os.cpu_count()} cores, Streamlit {streamlit.__version__}; "
          f"load average {load_start:.1f})", flush=True)
    app, reference, drawable = [], [], []
    per_block = max(1, args.rounds // args.blocks)
    with tempfile.TemporaryDirectory() as tmp, chromium_browser() as browser:
        env = {"MNIST_STUDIO_RUNS": str(Path(tmp) / "runs"), "MNIST_STUDIO_WARMUP": "0"}
        scripts = {}
        for name, canvas in (("pad", PAD), ("drawable", DRAWABLE)):
            scripts[name] = Path(tmp) / f"reference_{name}.py"
            scripts[name].write_text(REFERENCE_APP.format(repo=str(REPO), canvas=canvas.code))
        with (streamlit_server(env) as app_url, streamlit_server(env, script=scripts["pad"]) as reference_url,
              streamlit_server(env, script=scripts["drawable"]) as drawable_url):
            for block in range(args.blocks):  # alternate, so all three see the same machine
                reference += measure(browser, reference_url, "", PAD, "Draw something", 1, None, per_block,
                                     args.warmup)
                app += measure(browser, app_url, "predict", PAD, "Draw a digit on the canvas", APP_MODELS,
                               APP_LAST, per_block, args.warmup)
                drawable += measure(browser, drawable_url, "", DRAWABLE, "Draw something", 1, None, per_block,
                                    args.warmup)
                print(f"block {block + 1}: app bars p50 {statistics.median(r['bars'] for r in app):.0f} ms, "
                      f"reference {statistics.median(r['bars'] for r in reference):.0f} ms, "
                      f"drawable-canvas reference {statistics.median(r['bars'] for r in drawable):.0f} ms",
                      flush=True)
    load_end = os.getloadavg()[0]

    print(f"\nMouse released on the canvas to ... ({len(app)} digits each; ms, p50 / p95):")
    print("| | app (3 MNIST models) | reference | app / reference (p50) | reference on streamlit-drawable-canvas |\n"
          "|---|---:|---:|---:|---:|")
    for key, label in (("answer", "predictions and confidence in the DOM"),
                       ("bars", "**probability bars drawn**"), ("done", "whole page done")):
        a50, a95 = percentiles([r[key] for r in app])
        r50, r95 = percentiles([r[key] for r in reference])
        d50, d95 = percentiles([r[key] for r in drawable])
        print(f"| {label} | {a50:.0f} / {a95:.0f} | {r50:.0f} / {r95:.0f} | {a50 / r50:.2f}x | {d50:.0f} / {d95:.0f} |")
    b50, b95 = percentiles([r["bars"] for r in app])
    met = b50 < TARGET_P50_MS and b95 < TARGET_P95_MS
    print(f"\ntarget: bars under {TARGET_P50_MS:.0f} ms p50 and {TARGET_P95_MS:.0f} ms p95: "
          f"{'met' if met else 'NOT met'}")
    print("digits read by the first model: " + " ".join(f"{r['digit']}->{r['shown']}" for r in app))
    print(f"load average: {load_start:.1f} at the start, {load_end:.1f} at the end")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": cpu_model(), "cores": os.cpu_count(), "load": [load_start, load_end],
                                    "app": app, "reference": reference, "drawable_reference": drawable},
                                   indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
