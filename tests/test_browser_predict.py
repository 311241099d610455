"""Real browser: draw a 7 on the Predict page's canvas with mouse strokes, see the prediction, clear it."""

from __future__ import annotations

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser import chromium_page, streamlit_server, stroke

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def predict_server(tmp_path_factory, tiny_data_root, mnist_pretrained):
    """One server for this file's visitors (each test is a fresh browser, so a fresh session): (url, real)."""
    root, real = mnist_pretrained
    env = {"MNIST_STUDIO_RUNS": str(tmp_path_factory.mktemp("predict") / "runs"),
           "MNIST_STUDIO_DATA": str(tiny_data_root), "MNIST_STUDIO_PRETRAINED": str(root)}
    with streamlit_server(env) as url:
        yield url, real


def test_drawing_a_seven_shows_what_the_model_reads(predict_server):
    url, real = predict_server
    with chromium_page() as page:
        page.goto(f"{url}/predict")
        page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
        canvas = page.locator("canvas.pad-canvas").first  # the sketchpad (app/components/sketchpad.py)
        canvas.wait_for()
        box = canvas.bounding_box()
        assert box and box["width"] >= 200 and box["height"] >= 200
        # A small 7 in the top-left corner: the page must centre and scale it as MNIST did.
        stroke(page, box, [(40, 40), (120, 40), (70, 150)])
        page.get_by_text("What the model sees").wait_for(timeout=60_000)
        value = page.get_by_test_id("stMetricValue").first
        value.wait_for()
        if real:
            assert value.inner_text().strip() == "7"
        else:
            assert value.inner_text().strip() in [str(d) for d in range(10)]
        page.get_by_text("Robustness probe").wait_for()
        assert page.get_by_text("Draw a digit on the canvas").count() == 0
        # Clear empties the canvas; an empty canvas is not predicted.
        page.get_by_role("button", name="Clear the drawing").click()
        page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
        assert page.get_by_test_id("stMetricValue").count() == 0
        # Undo takes back the last stroke: a stroke, then Undo, is an empty canvas again.
        assert page.get_by_role("button", name="Undo the last stroke").is_disabled()
        stroke(page, box, [(60, 50), (200, 50), (110, 240)])
        page.get_by_text("What the model sees").wait_for(timeout=60_000)
        page.get_by_role("button", name="Undo the last stroke").click()
        page.get_by_text("Draw a digit on the canvas").wait_for(timeout=60_000)
        assert page.get_by_test_id("stMetricValue").count() == 0


# the "i. layer" headings of Inside the network, in page order
LAYER_HEADINGS = """() => [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
  .map((e) => e.innerText.trim()).filter((t) => /^\\d+\\. \\S/.test(t))"""


def test_drawing_a_seven_walking_through_every_layer_of_the_fast_net_and_opening_a_feature_map(predict_server,
                                                                                               mnist_pretrained):
    from core.inference.features import feature_maps
    from core.store.checkpoint import load_model

    url, real = predict_server
    root, _ = mnist_pretrained
    fast = load_model(root / "mnist-fast")
    assert fast.arch == "fast"
    layers = [f"{i + 1}. {layer.name} · {layer.shape_text}"
              for i, layer in enumerate(feature_maps(fast, np.zeros((28, 28), np.float32)))]
    assert layers[-1].split(" · ")[0].endswith("softmax")
    with chromium_page() as page:
        page.goto(f"{url}/predict")
        canvas = page.locator("canvas.pad-canvas").first
        canvas.wait_for(timeout=60_000)
        box = canvas.bounding_box()
        stroke(page, box, [(60, 50), (200, 50), (110, 240)])  # a 7
        page.get_by_text("Inside the network").wait_for(timeout=60_000)
        page.get_by_text("softmax", exact=False).last.wait_for()
        if real:
            assert page.get_by_test_id("stMetricValue").first.inner_text().strip() == "7"
        # every layer of the fast net, in the order the data flows, to the softmax; its fixed first filters
        assert page.evaluate(LAYER_HEADINGS) == layers
        assert page.get_by_text("fixed whitening filters", exact=False).count() == 1
        # open the first pooling layer's map 3: it is shown large with the input patch it sees
        # the page may still be redrawing (saliency, the probe), which closes an open list: open it again if so
        for _ in range(5):
            page.get_by_label("Look closer at layer").click()
            try:
                page.get_by_role("option").filter(has_text="maxpool").first.click(timeout=8000)
                break
            except PlaywrightTimeout:
                continue
        page.get_by_text("has no filter of its own").wait_for(timeout=60_000)
        for _ in range(120):  # until the redraw has dropped the previous layer's (stale) map selector
            if page.get_by_label("Feature map").count() == 1:
                break
            page.wait_for_timeout(250)
        page.get_by_label("Feature map").fill("3")
        page.get_by_label("Feature map").press("Enter")
        page.get_by_text("map 3 of maxpool 2x2: strongest at").wait_for(timeout=60_000)
        assert page.get_by_text("input patch it sees there").count() == 1
