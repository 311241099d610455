"""Does watching a run slow it down? Training images/second of the same run without and with the Train page open.

Each run is started exactly as the app starts it (core.launcher: `python -m core.train --start RUN --queue
--quiet` in its own process) into a temporary run store. "alone": nothing watches it (the browser shows a
blank tab). "page open": a headless Streamlit server on 127.0.0.1 and Debian's Chromium show the Train page,
whose live view refreshes every second while the run trains. As in use, the page is open before training
begins: the bench holds the training slot, so each run waits queued (its process started, torch imported)
while the page loads and settles, then lets it train; "alone" runs wait the same time before a blank tab.
Runs alternate (alone, page, alone, page...) so both see the same machine. Images/second is training
images over training seconds (from the run's epoch events, validation excluded). The target is a
difference under 10%.

    MNIST_STUDIO_DATA=/path/to/data python bench/page_overhead.py                  # fast preset, all images, 3 epochs
    python bench/page_overhead.py --subset 3000 --epochs 1 --repeats 1             # a quick check
"""

from __future__ import annotations

import argparse
import fcntl
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.data.datasets import is_available  # noqa: E402
from core.store import events, launcher, runs  # noqa: E402
from core.store.paths import data_root  # noqa: E402
from core.training.presets import PRESETS, get_preset  # noqa: E402
from tests.browser import chromium_page, streamlit_server  # noqa: E402

TIMEOUT_S = 3600
SETTLE_S = 8.0  # seconds a run waits queued before it may train


def images_per_second(path: Path) -> tuple[float, float]:
    """(training images per second, training seconds) of a finished run, from its epoch events."""
    logged, _ = events.read_events(path)
    start = next(e for e in logged if e["type"] == "start")
    epochs = list(events.epoch_events(logged).values())
    seconds = sum(e["epoch_seconds"] for e in epochs)
    batch = runs.read_json(path / "config.json")["batch_size"]
    return start["steps_per_epoch"] * batch * len(epochs) / seconds, seconds


@contextmanager
def training_slot_held():
    """Hold the only training slot (core.slots: a lock file per slot), so started runs wait in the queue."""
    slot_dir = runs.runs_root() / ".slots"
    slot_dir.mkdir(parents=True, exist_ok=True)
    with open(slot_dir / "slot-0.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def train_once(config, name: str, page=None, url: str | None = None) -> dict:
    """Start one run through the launcher; with `page`, the Train page watches it from before it trains."""
    started = time.time()
    with training_slot_held():
        path = launcher.start_run(config, name=name)
        if page is not None:
            page.goto(f"{url}/train")  # a fresh session watches the newest run: this one, queued
            page.get_by_text("Status:").first.wait_for(timeout=120_000)
        time.sleep(SETTLE_S)  # the page settles (or the blank tab idles); the run waits for the slot
    while runs.read_run(path).state in runs.ACTIVE_STATES:
        if time.time() - started > TIMEOUT_S:
            launcher.stop_run(path)
            raise RuntimeError(f"{name} did not finish in {TIMEOUT_S}s")
        time.sleep(0.5)
    charts = page.locator(".js-plotly-plot").count() if page is not None else 0
    info = runs.read_run(path)
    if info.state != "completed":
        raise RuntimeError(f"{name} ended {info.state}: {info.status.get('error')}; see {path / launcher.LOG_NAME}")
    rate, seconds = images_per_second(path)
    return {"name": name, "images_per_sec": rate, "train_s": seconds, "wall_s": time.time() - started,
            "charts": charts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="fast", choices=tuple(PRESETS))
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--subset", type=int, default=0, help="training images (0 = all)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each kind, alternating")
    args = parser.parse_args(argv)
    if not is_available(args.dataset):
        parser.error(f"{args.dataset} is not under {data_root()} (set MNIST_STUDIO_DATA)")
    config = get_preset(args.preset).config(args.dataset, subset=args.subset, epochs=args.epochs)
    store = Path(tempfile.mkdtemp(prefix="page-overhead-"))
    env = {"MNIST_STUDIO_RUNS": str(store / "runs"), "MNIST_STUDIO_PRETRAINED": str(store / "pretrained")}
    env["MNIST_STUDIO_MAX_CONCURRENT"] = "1"
    os.environ.update(env)  # the launcher and its children use the same temporary store
    print(f"preset {args.preset}, {args.dataset}, subset {args.subset}, {args.epochs} epochs, {os.cpu_count()} CPUs; "
          f"store {store}", flush=True)
    results = {"alone": [], "page open": []}
    with streamlit_server(env) as url, chromium_page() as page:
        for i in range(1, args.repeats + 1):
            page.goto("about:blank")
            results["alone"].append(train_once(config, f"alone-{i}"))
            results["page open"].append(train_once(config, f"page-{i}", page, url))
            for kind in results:
                r = results[kind][-1]
                print(f"  {kind:<10} #{i}: {r['images_per_sec']:8,.0f} images/s  {r['train_s']:7.1f}s training  "
                      f"{r['wall_s']:7.1f}s wall", flush=True)
        page.goto("about:blank")
    if not all(r["charts"] for r in results["page open"]):
        print("warning: the page showed no chart during a 'page open' run", file=sys.stderr)
    alone = statistics.mean(r["images_per_sec"] for r in results["alone"])
    watched = statistics.mean(r["images_per_sec"] for r in results["page open"])
    slowdown = (alone - watched) / alone * 100
    print(f"\n{'':<12}{'alone':>12}{'page open':>12}{'difference':>12}")
    print(f"{'images/s':<12}{alone:>12,.0f}{watched:>12,.0f}{-slowdown:>+11.1f}%")
    print(f"\nwatching the run {'slowed it by' if slowdown > 0 else 'did not slow it; it ran'} "
          f"{abs(slowdown):.1f}%{'' if slowdown > 0 else ' faster'} (target: under 10% slower) -> "
          f"{'OK' if slowdown < 10 else 'OVER TARGET'}")
    return 0 if slowdown < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
