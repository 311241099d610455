import base64
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from core.analysis import errors as analysis
from core.analysis import metrics
from core.store import runs
from core.training import session as train
from core.views.formats import format_count, format_duration
from tests.conftest import open_page, tiny_config
from tests.idx import synthetic_digits, write_idx_images, write_idx_labels

TILE = re.compile(r"^#(\d+) · true \*\*(.+?)\*\* → \*\*(.+?)\*\*")


def write_confusable(root: Path, folder: str, drawn_as: dict[int, int]) -> None:
    """The tiny synthetic dataset, except that each class in `drawn_as` is drawn like another class: a real
    model trained on it confuses those pairs, as a real one confuses Shirt and T-shirt/top."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", 600, 1), ("t10k", 200, 2)):
        images, labels = synthetic_digits(n, seed)
        for cls, like in drawn_as.items():
            donors = np.flatnonzero(labels == like)
            for j, i in enumerate(np.flatnonzero(labels == cls)):
                images[i] = images[donors[j % len(donors)]]
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)


@pytest.fixture
def confusable(store, tmp_path, monkeypatch) -> Path:
    """The store, with data where 9 looks like 4 and 2 like 8 (MNIST), T-shirt/top like Shirt (Fashion-MNIST)."""
    root = tmp_path / "confusable"
    write_confusable(root, "MNIST", {9: 4, 2: 8})
    write_confusable(root, "FashionMNIST", {0: 6})
    monkeypatch.setenv("MNIST_STUDIO_DATA", str(root))
    return store


def make_run(store: Path, name: str, **overrides) -> Path:
    cfg = tiny_config(**overrides)
    runs.RunWriter.create(store / name, cfg.to_dict(), state="running")
    state, _ = train.run(cfg, store / name)
    assert state == "completed"
    return store / name


def chart(at, key: str) -> dict:
    (found,) = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"-{key}")]
    return json.loads(found.proto.spec)


def array(value) -> np.ndarray:
    """A plotly JSON array: a list, or the typed-array form {"dtype", "bdata", "shape"}."""
    if isinstance(value, dict):
        a = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return a.reshape([int(s) for s in str(shape).split(",")]) if shape else a
    return np.asarray(value)


def tiles(at) -> list[tuple[int, str, str]]:
    return [(int(m[1]), m[2], m[3]) for m in (TILE.match(c.value) for c in at.caption) if m]


def test_evaluate_page_shows_headline_curves_table_and_the_true_confusion_matrix(confusable):
    run = make_run(confusable, "mnist-run")
    probs, labels = runs.load_test_outputs(run)
    confusion = metrics.confusion_matrix(labels, probs.argmax(1), 10)
    at = open_page("app/evaluate.py")
    assert not at.exception
    shown = {m.label: m.value for m in at.metric}
    report = metrics.classification_report(labels, probs.argmax(1), 10)
    assert shown["Test accuracy"] == f"{report['accuracy']:.2%}"
    assert shown["Macro F1"] == f"{report['macro']['f1']:.4f}"
    summary = runs.read_json(run / "summary.json")
    assert shown["Parameters"] == format_count(summary["params"])
    assert shown["Training time"] == format_duration(summary["train_seconds"])

    # the heatmap carries exactly core.metrics' counts, in both display modes
    heat = chart(at, "eval_cm")["data"][0]
    assert array(heat["customdata"])[:, :, 2].astype(int).tolist() == confusion.tolist()
    assert heat["text"] == [[str(v) if v else "" for v in row] for row in confusion.tolist()]
    at.radio(key="eval_cm_mode").set_value("% of the true class").run()
    pct = array(chart(at, "eval_cm")["data"][0]["z"])
    off = ~np.eye(10, dtype=bool)
    assert np.allclose(pct[off], metrics.row_normalise(confusion)[off])
    assert confusion[9, 4] + confusion[4, 9] > 0  # the premise: 4 and 9 are confused

    # learning curves: train and validation, per epoch
    curves = chart(at, "eval_curves")["data"]
    assert {t["name"] for t in curves} == {"train", "validation"} and all(list(t["x"]) == [1, 2] for t in curves)

    # per-class table with the worst classes flagged
    table = at.dataframe[0].value
    assert table["support"].tolist() == confusion.sum(1).tolist()
    worst = set(table[table["worst"]]["class"])
    assert len(worst) == 3 and worst & {"4", "9"}

    # epoch replay: the validation matrix logged for that epoch
    at.select_slider(key="eval_epoch").set_value(1).run()
    events, _ = runs.read_metrics(run)
    logged = [e["val_confusion"] for e in events if e["type"] == "epoch" and e["epoch"] == 1][0]
    replay = chart(at, "eval_epoch_cm")["data"][0]
    assert array(replay["customdata"])[:, :, 2].astype(int).tolist() == logged
    assert not at.exception


def test_picking_a_cell_or_a_hard_pair_filters_the_galleries(confusable):
    run = make_run(confusable, "mnist-run")
    probs, labels = runs.load_test_outputs(run)
    confusion = metrics.confusion_matrix(labels, probs.argmax(1), 10)
    true_c, pred_c = (9, 4) if confusion[9, 4] >= confusion[4, 9] else (4, 9)
    at = open_page("app/evaluate.py")
    at.selectbox(key="eval_cell_true").set_value(true_c)
    at.selectbox(key="eval_cell_pred").set_value(pred_c)
    at.run()
    assert not at.exception
    n_cell = int(confusion[true_c, pred_c])
    assert any(m.value.startswith(f"**True {true_c} predicted {pred_c}**: {n_cell} test images") for m in at.markdown)
    cell_tiles = tiles(at)[:min(n_cell, 12)]
    expected = analysis.cell_indices(labels, probs.argmax(1), true_c, pred_c, probs)[:12]
    assert [t[0] for t in cell_tiles] == expected.tolist()
    assert all(t[1:] == (str(true_c), str(pred_c)) for t in cell_tiles)
    assert len(at.get("image")) == len(tiles(at))  # every tile shows its image

    at.button(key="eval_pair_4_9").click().run()
    assert not at.exception
    wrong = analysis.misclassified(probs, labels, pair=(4, 9))
    assert len(wrong) > 0
    assert any(m.value.startswith(f"**{len(wrong)}** misclassified test images match") for m in at.markdown)
    gallery = tiles(at)[min(n_cell, 12):][:min(len(wrong), 18)]
    assert [t[0] for t in gallery] == wrong[:18].tolist()
    assert {t[1:] for t in gallery} <= {("4", "9"), ("9", "4")}
    confidences = probs[wrong].max(1)
    assert (np.diff(confidences) <= 0).all()  # most confident first

    at.button(key="eval_pair_clear").click().run()
    all_wrong = analysis.misclassified(probs, labels)
    assert len(all_wrong) > len(wrong)  # 2 and 8 are confused too, outside the pair
    assert any(m.value.startswith(f"**{len(all_wrong)}** misclassified") for m in at.markdown)


def test_evaluate_page_without_the_data_shows_metrics_and_says_images_need_it(confusable, tmp_path, monkeypatch):
    make_run(confusable, "fashion-run", dataset="fashion-mnist")
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("MNIST_STUDIO_DATA", str(empty))
    at = open_page("app/evaluate.py")
    assert not at.exception
    assert "MNIST_STUDIO_DATA" in at.warning[0].value
    assert any("images need the dataset" in i.value for i in at.info)
    assert at.metric[0].label == "Test accuracy" and not at.get("image")
    assert tiles(at)  # the galleries still list the images by number, labels and probabilities
    at.button(key="eval_pair_6_0").click().run()
    assert not at.exception


@pytest.mark.browser
def test_clicking_a_confusion_cell_opens_those_images_in_a_real_browser(confusable):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from tests.browser import chromium_page, streamlit_server

    run = make_run(confusable, "fashion-run", dataset="fashion-mnist")
    probs, labels = runs.load_test_outputs(run)
    n = int(metrics.confusion_matrix(labels, probs.argmax(1), 10)[1, 1])
    env = {k: os.environ[k] for k in ("MNIST_STUDIO_DATA", "MNIST_STUDIO_RUNS", "MNIST_STUDIO_PRETRAINED")}
    with streamlit_server(env) as url, chromium_page() as page:
        page.goto(f"{url}/evaluate")
        page.get_by_text("Confusion matrix (test set)").wait_for()
        cm = page.locator(".stPlotlyChart").nth(1)
        area = cm.locator(".nsewdrag").first
        area.wait_for()
        hover = cm.locator(".hoverlayer .hovertext").filter(has_text="true Trouser → predicted Trouser")
        shown = page.get_by_text(f"True Trouser predicted Trouser: {n} test images")
        # the cell true Trouser (row 1) predicted Trouser (column 1): never the cell shown before a click.
        # Charts above it draw late and push it down, Plotly attaches its handlers a moment after drawing, and a
        # click counts only on the point under the hover, so each try scrolls to the chart, points at the cell
        # until Plotly's hover label names it, and clicks there, as a person would.
        for _ in range(5):
            cm.scroll_into_view_if_needed()
            box = area.bounding_box()
            x, y = box["x"] + box["width"] * 1.5 / 10, box["y"] + box["height"] * 1.5 / 10
            page.mouse.move(x - 5, y - 5)
            page.mouse.move(x, y, steps=3)
            try:
                hover.wait_for(timeout=3000)
            except PlaywrightTimeout:
                continue
            page.mouse.click(x, y)
            try:
                shown.wait_for(timeout=8000)
                break
            except PlaywrightTimeout:
                continue
        shown.wait_for(timeout=1000)


@pytest.mark.parametrize("content", [b"not a zip", "bad labels"])
def test_unreadable_test_outputs_get_a_clear_message(store, content):
    run = store / "broken"
    writer = runs.RunWriter.create(run, tiny_config().to_dict(), state="completed")
    writer.set_status("completed")
    (run / "best.pt").write_bytes(b"weights")
    if content == "bad labels":
        np.savez(run / "test_outputs.npz", probs=np.full((3, 10), 0.1, np.float16), labels=np.array([0, 1, 12]))
    else:
        (run / "test_outputs.npz").write_bytes(content)
    at = open_page("app/evaluate.py")
    assert not at.exception
    assert "cannot be read" in at.error[0].value and not at.metric


def test_the_map_is_made_once_in_the_background_with_progress_then_opens_from_its_file(confusable, monkeypatch):
    import time

    from core.analysis import projection, projection_job

    run = make_run(confusable, "fashion-run", dataset="fashion-mnist")
    _, labels = runs.load_test_outputs(run)
    at = open_page("app/evaluate.py")  # maps are not made by themselves here (tests/conftest.py)
    assert not at.exception and "Where the test images land" in [s.value for s in at.subheader]
    assert at.button(key="eval_map_compute_button") and not (run / projection_job.PROGRESS_NAME).exists()
    monkeypatch.setenv(projection_job.AUTO_ENV, "1")
    other = open_page("app/evaluate.py")  # as the app runs: opening the run starts its map
    assert not other.exception
    started = runs.read_json(run / projection_job.PROGRESS_NAME)["started"]
    if projection_job.state(run).state == "running":
        assert "in the background" in other.get("progress")[0].proto.text
    at.button(key="eval_map_compute_button").click().run()  # the first visitor presses too: still one job
    assert not at.exception and runs.read_json(run / projection_job.PROGRESS_NAME)["started"] == started
    deadline = time.time() + 240  # UMAP compiles in the job's process: generous on a loaded machine
    while projection_job.state(run).state == "running" and time.time() < deadline:
        time.sleep(0.3)
    assert projection_job.state(run).state == "done"
    at.run()
    assert not at.exception
    stored = projection.load(run)  # written into the run directory, read from there
    assert stored is not None and stored.coords["umap"].shape == (len(labels), 2)
    assert at.radio(key="eval_map_method").options == ["PCA", "UMAP"]
    spec = chart(at, "eval_map_chart")
    assert len(spec["data"]) == 10 and sum(len(array(t["x"])) for t in spec["data"]) == len(labels)
    first = spec["data"][0]  # T-shirt/top, at its stored PCA coordinates
    index = array(first["customdata"]).astype(int)
    np.testing.assert_allclose(array(first["x"]), stored.coords["pca"][index, 0], rtol=1e-5)
    assert any("overlap most" in m.value and " ↔ " in m.value for m in at.markdown)
    at.multiselect(key="eval_map_classes").set_value([0, 6]).run()
    assert [t["name"] for t in chart(at, "eval_map_chart")["data"]] == ["T-shirt/top", "Shirt"]


def test_a_guest_cannot_spend_the_server_on_another_visitors_map(confusable, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from core import hosting
    from core.analysis import projection_job
    from core.store import guest
    from tests.conftest import REPO

    run = make_run(confusable, "alices-run", dataset="fashion-mnist")
    guest.record_owner(run, guest.Actor.from_token("alice-token-" + "a" * 12), 60)
    monkeypatch.setenv(hosting.MODE_ENV, "guest")
    monkeypatch.setenv(projection_job.AUTO_ENV, "1")
    at = AppTest.from_file(str(REPO / "streamlit_app.py"), default_timeout=60)
    at.query_params["visitor"] = "bob-token-" + "b" * 14
    at.run()
    at.switch_page("app/evaluate.py")
    at.run()
    assert not at.exception and any("has no map yet" in i.value for i in at.info)
    assert not [b for b in at.button if b.key == "eval_map_compute_button"]
    assert projection_job.state(run).state == "none" and not (run / projection_job.PROGRESS_NAME).exists()


def test_a_map_that_failed_says_why_and_offers_another_try(confusable, tmp_path, monkeypatch):
    from core.analysis import projection_job
    from core.store import atomic

    run = make_run(confusable, "failed-map", dataset="fashion-mnist")
    atomic.write_json(run / projection_job.PROGRESS_NAME, {"state": "failed", "error": "MemoryError: too big"})
    monkeypatch.setenv(projection_job.AUTO_ENV, "1")
    at = open_page("app/evaluate.py")
    assert not at.exception  # a failed map is not retried by itself on every visit
    assert any("could not be made: MemoryError: too big" in e.value for e in at.error)
    assert at.button(key="eval_map_retry_button") and runs.read_run(run).state == "completed"
