"""Real browser: on Evaluate, lasso the region of the shipped Fashion-MNIST best model's map where shirts and
T-shirts mix, and see those test images with their labels and probabilities."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from core.analysis import projection
from tests.browser import chromium_page, streamlit_server
from tests.conftest import REPO, require_or_skip

pytestmark = pytest.mark.browser

RUN = "fashion-mnist-best"
T_SHIRT, SHIRT = 0, 6
RADIUS = 1.2  # UMAP units around the mixing spot: about 550 test images, nearly all shirts and T-shirts
CORNERS = 24
CAPTION = re.compile(r"^#(\d+) · true (.+?) → (.+?)\n(.+)$", re.S)

# [x, y] of data points -> viewport pixels, through the plot's own axes
TO_PIXELS = """([points]) => {
  const gd = document.querySelector('.st-key-eval_map_chart .js-plotly-plot');
  const L = gd._fullLayout, box = gd.getBoundingClientRect();
  return points.map(([x, y]) => [box.left + L._size.l + L.xaxis.l2p(x), box.top + L._size.t + L.yaxis.l2p(y)]);
}"""
SHOWS_FIRST_POINT = """([x]) => {
  const gd = document.querySelector('.st-key-eval_map_chart .js-plotly-plot');
  return !!gd && !!gd._fullData && gd._fullData.length === 10 && Math.abs(gd._fullData[0].x[0] - x) < 1e-3;
}"""
# the captions of the tiles that follow the "selected on the map" line, in page order
SELECTED_CAPTIONS = """() => {
  const found = document.querySelectorAll('[data-testid="stMarkdownContainer"], [data-testid="stCaptionContainer"]');
  const texts = [...found].map((e) => e.innerText.trim()).filter((t, i, all) => t !== all[i - 1]);
  const start = texts.findIndex((t) => t.includes('selected on the map'));
  return start < 0 ? null : [texts[start], texts.slice(start + 1).filter((t) => /^#\\d+ · true /.test(t))];
}"""


def mixing_spot(coords: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The median position of the shirts with T-shirts among their 10 nearest neighbours on the map (and back)."""
    _, index = NearestNeighbors(n_neighbors=11).fit(coords).kneighbors(coords)
    around = labels[index[:, 1:]]
    mixed = ((labels == SHIRT) & ((around == T_SHIRT).sum(1) >= 3)) | \
            ((labels == T_SHIRT) & ((around == SHIRT).sum(1) >= 3))
    return np.median(coords[mixed], axis=0)


def test_lassoing_where_shirts_and_t_shirts_mix_shows_those_images(tmp_path, real_data_root):
    shipped = REPO / "checkpoints" / "pretrained" / RUN
    stored = projection.load(shipped)
    require_or_skip(stored is not None and "umap" in stored.coords, f"the shipped {RUN} has no UMAP map")
    coords, labels = stored.coords["umap"], stored.labels
    centre = mixing_spot(coords, labels)
    distance = np.linalg.norm(coords - centre, axis=1)
    inner = distance <= RADIUS * np.cos(np.pi / CORNERS)  # surely inside the lasso
    outer = distance <= RADIUS  # at most inside it
    assert np.isin(labels[outer], [T_SHIRT, SHIRT]).mean() > 0.9  # the spot is where they mix
    assert min((labels[inner] == T_SHIRT).sum(), (labels[inner] == SHIRT).sum()) > 50
    angles = np.linspace(0, 2 * np.pi, CORNERS, endpoint=False)
    lasso = centre + RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    pretrained = tmp_path / "pretrained"  # only this run: it is the one Evaluate opens
    shutil.copytree(shipped, pretrained / RUN)
    env = {"MNIST_STUDIO_RUNS": str(tmp_path / "runs"), "MNIST_STUDIO_PRETRAINED": str(pretrained),
           "MNIST_STUDIO_DATA": str(real_data_root)}
    first_t_shirt = float(coords[np.flatnonzero(labels == T_SHIRT)[0], 0])
    with streamlit_server(env) as url, chromium_page() as page:
        page.goto(f"{url}/evaluate")
        chart = page.locator(".st-key-eval_map_chart")
        chart.wait_for(timeout=150_000)  # 74 s at load average 22 on 2 cores, ~30 s at 12
        page.locator(".st-key-eval_map_method").get_by_text("UMAP").click()
        page.wait_for_function(SHOWS_FIRST_POINT, arg=[first_t_shirt], timeout=60_000)
        chart.scroll_into_view_if_needed()
        page.wait_for_timeout(300)  # let the scroll settle before reading positions
        path = page.evaluate(TO_PIXELS, [lasso.tolist()])
        page.mouse.move(*path[0])
        page.mouse.down()
        for x, y in [*path[1:], path[0]]:
            page.mouse.move(x, y, steps=4)
        page.mouse.up()
        page.get_by_text("selected on the map").wait_for(timeout=90_000)
        page.wait_for_function(f"() => ({SELECTED_CAPTIONS})()?.[1]?.length >= 24", timeout=30_000)
        line, captions = page.evaluate(SELECTED_CAPTIONS)
    count = int(re.search(r"(\d[\d,]*) test images selected", line).group(1).replace(",", ""))
    assert 0.85 * inner.sum() <= count <= outer.sum() + 5, (count, inner.sum(), outer.sum())  # mouse vs polygon
    shown = [CAPTION.match(text.strip()) for text in captions[:24]]
    assert all(shown), captions[:24]
    indices = [int(m.group(1)) for m in shown]
    assert indices == sorted(indices) and all(distance[i] <= 1.1 * RADIUS for i in indices)  # the lassoed, first 24
    names = {"T-shirt/top", "Shirt"}
    true_names = [m.group(2) for m in shown]
    assert sum(name in names for name in true_names) >= 20, true_names
    assert all("%" in m.group(4) for m in shown)  # each with its top probabilities
