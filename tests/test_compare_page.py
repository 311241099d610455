"""AppTest of the Compare page on two runs trained here on the tiny synthetic data."""

import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from core.analysis.compare import describe_mcnemar, fixed_and_broken, mcnemar
from core.data.datasets import load_split
from core.inference.engine import predict_probs
from core.inference.preprocess import preprocess
from core.store import runs
from core.store.checkpoint import load_model
from core.training.session import run
from tests.conftest import open_page, tiny_config


def train(store, name, **overrides):
    cfg = tiny_config(**overrides)
    runs.RunWriter.create(store / name, cfg.to_dict(), state="running")
    state, _ = run(cfg, store / name)
    assert state == "completed"
    return store / name


@pytest.fixture
def two_runs(store):
    """A weak run (logistic regression, one epoch at a tiny learning rate) and a strong one (cnn2)."""
    weak = train(store, "weak", model="linear", epochs=1, lr=1e-4)
    strong = train(store, "strong", model="cnn2", epochs=2)
    return weak, strong


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def picker(at, label: str):
    return next(s for s in at.selectbox if s.label == label)


def tab_captions(tab) -> list[str]:
    return [c.value for c in tab.caption]  # the caption under each tile


def parse_caption(caption: str) -> tuple[str, str, str]:
    """'true 3 · A 5 20% · B 3 99%' -> ('3', '5', '3')."""
    true, a, b = caption.split(" · ")
    return true.split()[1], a.split()[1], b.split()[1]


def test_compare_page_is_consistent_with_the_stored_outputs(two_runs):
    weak, strong = two_runs
    probs_w, labels = runs.load_test_outputs(weak)
    probs_s, _ = runs.load_test_outputs(strong)
    preds_w, preds_s = probs_w.argmax(1), probs_s.argmax(1)
    fixed, broken = fixed_and_broken(labels, preds_w, preds_s)
    assert fixed.size > 24, "the weak run should miss many images the strong one gets right"

    at = open_page("app/compare.py")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert set(table["run"]) == {"weak", "strong"}
    row = table.set_index("run").loc["strong"]
    assert row["test accuracy"] == pytest.approx(float(np.mean(preds_s == labels)))
    assert row["size MB"] == pytest.approx((strong / "best.pt").stat().st_size / 1e6)
    assert table["latency p50 ms"].isna().all()  # measured only on demand

    # default pair: A = the lower test accuracy (weak), B = the higher (strong)
    assert (picker(at, "A (reference)").value, picker(at, "B (candidate)").value) == ("weak", "strong")
    assert describe_mcnemar(mcnemar(labels, preds_w, preds_s), "weak", "strong") in texts(at.info)
    assert metric(at, "Fixed by B") == f"{fixed.size:,}"
    assert metric(at, "Broken by B") == f"{broken.size:,}"
    assert at.tabs[0].label == f"Fixed by B ({fixed.size:,})"
    fixed_captions = tab_captions(at.tabs[0])
    assert len(fixed_captions) == 24  # the default gallery size
    for true, a, b in map(parse_caption, fixed_captions):
        assert b == true != a
    assert len(tab_captions(at.tabs[1])) == min(broken.size, 24)
    assert any("more of the 200 test images right than weak" in t for t in texts(at.markdown))

    # swapping A and B swaps fixed and broken
    picker(at, "A (reference)").set_value("strong")
    picker(at, "B (candidate)").set_value("weak")
    at.run()
    assert not at.exception, at.exception
    assert metric(at, "Fixed by B") == f"{broken.size:,}"
    assert metric(at, "Broken by B") == f"{fixed.size:,}"
    assert describe_mcnemar(mcnemar(labels, preds_s, preds_w), "strong", "weak") in texts(at.info)
    for true, a, b in map(parse_caption, tab_captions(at.tabs[1])):
        assert a == true != b

    # latency on demand fills both rows, and stays for this session
    at.button(key="compare_measure_latency").click()
    at.run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert (table["latency p50 ms"] > 0).all() and (table["latency p95 ms"] >= table["latency p50 ms"]).all()
    at.run()
    assert at.dataframe[0].value["latency p50 ms"].notna().all()

    assert [b.label for b in at.get("download_button")] == ["Download table (CSV)", "Download table (Markdown)"]


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_same_input_shows_every_models_prediction(two_runs):
    images, _ = load_split("mnist", train=False)
    image = images[3].numpy()
    x = torch.from_numpy(preprocess(image, "digits").tensor_input[None])
    expected = {}
    for path in two_runs:
        loaded = load_model(path)
        expected[path.name] = str(int(predict_probs(loaded.model, x, loaded.mean, loaded.std)[0].argmax()))

    at = open_page("app/compare.py")
    at.radio(key="compare_input_source").set_value("Upload")
    at.run()
    at.file_uploader(key="compare_upload").set_value(("digit.png", png_bytes(image), "image/png"))
    at.run()
    assert not at.exception, at.exception
    table = next(d.value for d in at.dataframe if "prediction" in d.value.columns)
    assert dict(zip(table["run"], table["prediction"], strict=True)) == expected

    at.file_uploader(key="compare_upload").set_value(("junk.png", b"not an image", "image/png"))
    at.run()
    assert not at.exception, at.exception
    assert any("junk.png: not a supported image" in e for e in texts(at.error))


def test_without_test_images_the_page_shows_metrics_and_says_galleries_need_data(two_runs, monkeypatch, tmp_path):
    monkeypatch.setenv("MNIST_STUDIO_DATA", str(tmp_path / "no-data"))
    at = open_page("app/compare.py")
    assert not at.exception, at.exception
    assert set(at.dataframe[0].value["run"]) == {"weak", "strong"}
    assert "is not on this machine yet" in " ".join(texts(at.warning))
    assert any("galleries need the test images" in t for t in texts(at.info))
    assert not at.tabs


def test_fewer_than_two_runs_is_explained(store):
    train(store, "only", epochs=1)
    at = open_page("app/compare.py")
    assert not at.exception, at.exception
    assert any("at least two finished runs" in t and "there is 1" in t for t in texts(at.info))
    at.radio(key="compare_dataset").set_value("fashion-mnist")
    at.run()
    assert any("there are 0" in t for t in texts(at.info))


def test_damaged_or_foreign_test_outputs_are_left_out_with_a_message(two_runs):
    weak, strong = two_runs
    damaged, shorter = weak.parent / "damaged", weak.parent / "shorter"
    shutil.copytree(weak, damaged)
    (damaged / "test_outputs.npz").write_bytes(b"not a zip file")
    shutil.copytree(strong, shorter)
    probs, labels = runs.load_test_outputs(strong)
    np.savez(shorter / "test_outputs.npz", probs=probs[:50], labels=labels[:50])

    at = open_page("app/compare.py")
    at.multiselect(key="compare_runs_mnist").set_value([str(p.resolve()) for p in (strong, damaged, shorter)])
    at.run()
    assert not at.exception, at.exception
    warnings = " ".join(texts(at.warning))
    assert "damaged: the stored test outputs cannot be read" in warnings
    assert "shorter: its stored test labels differ" in warnings
    assert "Pick two or more runs" in " ".join(texts(at.info))

    at.multiselect(key="compare_runs_mnist").set_value([str(p.resolve()) for p in (weak, strong, damaged, shorter)])
    at.run()
    assert not at.exception, at.exception
    assert set(at.dataframe[0].value["run"]) == {"weak", "strong"}
