"""The Experiments page in a real browser: start a quick ready-made experiment (on the tiny data), watch the
leaderboard fill, and read the effects table."""

import re

import pytest

from core.experiments import report
from core.experiments import store as experiment_store
from tests.browser import chromium_page, streamlit_server
from tests.conftest import wait_for
from tests.test_experiments_page import no_orphan_workers  # noqa: F401  (a fixture)

pytestmark = pytest.mark.browser

DONE = re.compile(r"(\d+) done · \d+ running · \d+ queued · \d+ pruned")


def grid_rows(page, index: int) -> int:
    """Rows of the index-th data grid on the page (Streamlit's dataframes publish aria-rowcount, header included)."""
    return page.evaluate(f"() => {{ const g = document.querySelectorAll('[data-testid=stDataFrame] [role=grid]')"
                         f"[{index}]; return g ? Number(g.getAttribute('aria-rowcount')) - 1 : 0; }}")


def done_shown(page) -> int | None:
    """The number of finished trials the progress line shows (None while the page redraws it)."""
    texts = page.get_by_text(DONE).all_inner_texts()  # does not wait: the line is briefly absent in a redraw
    return int(DONE.search(texts[0]).group(1)) if texts else None


def test_start_a_quick_ready_made_and_watch_it_to_its_effects(store, experiments, no_orphan_workers):  # noqa: F811
    env = {"MNIST_STUDIO_RUNS": str(store), "MNIST_STUDIO_EXPERIMENTS": str(experiments)}
    with streamlit_server(env) as url, chromium_page() as page:
        page.goto(f"{url}/experiments")
        page.get_by_text("2-conv CNN vs LeNet-5", exact=True).wait_for(timeout=90_000)
        page.get_by_role("button", name="Start 2-conv CNN vs LeNet-5 (quick)").click()
        page.get_by_text(re.compile(r"Started experiment cnn2_lenet5-quick-")).wait_for(timeout=60_000)
        [name] = experiment_store.list_experiments()
        total = experiment_store.load_spec(name).n_trials()
        assert total == 6  # two models x three seeds

        progress = page.get_by_text(DONE)
        progress.wait_for(timeout=60_000)
        page.get_by_text("Leaderboard (by validation accuracy)").wait_for()
        wait_for("the leaderboard to fill", lambda: grid_rows(page, 0) >= 2, timeout=240)
        wait_for("every trial to finish", lambda: done_shown(page) == total, timeout=300)
        assert report.report(name)["counts"]["complete"] == total

        page.get_by_text(re.compile(r"^Effects on validation accuracy")).wait_for(timeout=60_000)
        page.get_by_text(re.compile(r"model lenet5 instead of cnn2: [+-]\d+\.\d \+- \d+\.\d points")).wait_for()
        # leaderboard, then one row per model (waited for: the grids are briefly absent while the page redraws)
        wait_for("the leaderboard and the effects table",
                 lambda: grid_rows(page, 0) == total and grid_rows(page, 1) == 2, timeout=60)
