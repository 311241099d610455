"""The Train page in a real browser: start a run, watch its progress and chart move, stop it."""

import re

import pytest

from core.store import runs
from tests.browser import chromium_page, streamlit_server
from tests.test_launcher import no_orphans, state, wait_for  # noqa: F401  (no_orphans is a fixture)

pytestmark = pytest.mark.browser

PROGRESS = re.compile(r"epoch (\d+)/1000 · step")


def step_points(page) -> int:
    """Points in the live step-loss chart, as Plotly holds them in the page."""
    return page.evaluate("() => { const g = document.querySelector('.js-plotly-plot');"
                         " return g && g.data ? g.data[0].x.length : 0; }")


def test_start_watch_and_stop_a_run_in_a_real_browser(store):
    with streamlit_server({"MNIST_STUDIO_RUNS": str(store)}) as url, chromium_page() as page:
        page.goto(f"{url}/train")
        epochs = page.get_by_label("Epochs", exact=True)
        epochs.fill("1000")  # the tiny data: a couple of steps per epoch, so it runs until stopped
        epochs.press("Enter")
        name = page.get_by_role("textbox", name="Run name (optional)")
        name.fill("browser-run")
        name.press("Enter")
        page.get_by_role("button", name="Start training", exact=True).click()
        page.get_by_text("Started browser-run").wait_for()
        path = store / "browser-run"
        assert (path / "config.json").is_file() and runs.read_json(path / "config.json")["epochs"] == 1000

        progress = page.get_by_text(PROGRESS)
        progress.wait_for(timeout=90_000)  # the training process imports torch first
        page.wait_for_function("() => { const g = document.querySelector('.js-plotly-plot');"
                               " return g && g.data && g.data[0].x.length > 0; }", timeout=60_000)
        first_epoch, first_points = int(PROGRESS.search(progress.inner_text()).group(1)), step_points(page)
        wait_for("the live view to move on", lambda: int(PROGRESS.search(progress.inner_text()).group(1))
                 > first_epoch and step_points(page) > first_points, timeout=60)
        assert state(path) == "running"

        page.get_by_role("button", name="Stop", exact=True).click()
        page.get_by_text(re.compile(r"Stopped after \d+ of 1000 epochs")).wait_for(timeout=60_000)
        page.locator("code", has_text=re.compile(r"^stopped$")).first.wait_for()  # the status line
        assert state(path) == "stopped" and 1 <= runs.read_run(path).summary["epochs"] < 1000
