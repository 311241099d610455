"""The Predict page in AppTest: renders with and without models, uploads one or many files, bad files."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.conftest import open_page


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def seven_photo() -> Image.Image:
    """Dark ink on light paper, like a phone photo of a handwritten 7."""
    img = Image.new("RGB", (300, 240), (228, 224, 215))
    ImageDraw.Draw(img).line([(100, 40), (200, 40), (135, 210)], fill=(30, 30, 40), width=14)
    return img


@pytest.fixture
def with_model(store, monkeypatch, mnist_pretrained):
    """The isolated store, with the pretrained MNIST run as the only model."""
    root, real = mnist_pretrained
    monkeypatch.setenv("MNIST_STUDIO_PRETRAINED", str(root))
    return real


def texts(at) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def probability_rows(at) -> list[list[tuple[str, float]]]:
    """Each model's probability bars on the page as (class, probability) rows, read from the HTML's data."""
    bodies = [e.proto.body for e in at.get("html") if 'class="prob-bars"' in e.proto.body]
    return [[(name, float(prob)) for name, prob in re.findall(r'data-class="([^"]*)" data-prob="([^"]*)"', body)]
            for body in bodies]


def test_page_without_models_says_how_to_get_one(store):
    at = open_page("app/predict.py")
    assert not at.exception
    assert "No trained models" in " ".join(i.value for i in at.info)


def test_page_with_a_model_preselects_it_and_asks_for_a_drawing(with_model):
    at = open_page("app/predict.py")
    assert not at.exception
    (models,) = at.multiselect
    assert len(models.value) == 1 and "mnist-fast" in models.value[0]
    assert any("Draw a digit" in i.value for i in at.info)  # an empty canvas is not predicted
    assert not at.metric
    at.radio(key="predict_dataset").set_value("fashion-mnist").run()
    assert not at.exception and "No trained models for Fashion-MNIST" in texts(at)


def test_a_broken_checkpoint_is_reported_and_the_other_models_still_predict(with_model, store):
    from core.store import runs

    broken = store / "broken-run"
    writer = runs.RunWriter.create(broken, {"dataset": "mnist", "model": "fast"}, state="completed")
    (writer.path / "best.pt").write_bytes(b"not a checkpoint")
    at = open_page("app/predict.py")
    assert len(at.multiselect[0].value) == 2
    at.radio(key="predict_source").set_value("Upload").run()
    at.file_uploader(key="predict_upload").set_value(("seven.png", png_bytes(seven_photo()), "image/png"))
    at.run()
    assert not at.exception
    (error,) = at.error
    assert "cannot be loaded" in error.value and "best.pt" in error.value
    assert len(at.metric) == 1


def test_upload_of_one_photo_shows_prediction_stages_saliency_and_probe(with_model):
    at = open_page("app/predict.py")
    at.radio(key="predict_source").set_value("Upload").run()
    at.file_uploader(key="predict_upload").set_value(("seven.jpg", png_bytes(seven_photo(), "JPEG"), "image/jpeg"))
    at.run()
    assert not at.exception and not at.error
    (metric,) = at.metric
    (bars,) = probability_rows(at)
    assert [name for name, _ in bars] == [str(d) for d in range(10)] and sum(p for _, p in bars) == pytest.approx(1)
    assert max(bars, key=lambda row: row[1])[0] == metric.value
    if with_model:
        assert metric.value == "7"
    shown = texts(at)
    assert "What the model sees" in shown and "Robustness probe" in shown and "keeps its answer" in shown
    probe = at.dataframe[0].value
    assert list(probe["variant"])[:2] == ["original", "shift left 3 px"] and len(probe) == 11
    assert not at.get("download_button")  # one file: no results table


def test_many_uploads_give_a_table_csv_and_one_line_per_bad_file(with_model):
    at = open_page("app/predict.py")
    at.radio(key="predict_source").set_value("Upload").run()
    files = [("seven.png", png_bytes(seven_photo()), "image/png"),
             ("notes.txt", b"this is not an image", "text/plain"),
             ("blank.png", png_bytes(Image.new("L", (64, 64), 255)), "image/png"),
             ("cut.png", png_bytes(seven_photo())[:300], "image/png"),
             ("one.webp", png_bytes(Image.fromarray(np.pad(np.full((120, 16), 255, np.uint8), 60)), "WEBP"),
              "image/webp")]
    at.file_uploader(key="predict_upload").set_value(files)
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 3 and all("\n" not in e for e in errors)
    assert [e.split(":")[0] for e in errors] == ["notes.txt", "blank.png", "cut.png"]
    table = at.dataframe[0].value
    assert list(table["file"]) == [f[0] for f in files]
    assert table["error"].astype(bool).sum() == 3
    assert at.get("download_button")
    detail = at.selectbox(key="predict_detail_file")
    assert detail.options == ["seven.png", "one.webp"]
    detail.select_index(1).run()
    assert not at.exception and "one.webp" in texts(at)
    if with_model:
        assert table.loc[0, "pretrained/mnist-fast prediction"] == "7"
        assert at.metric[0].value == "1"


def test_inside_the_network_walks_every_layer_to_the_softmax_and_opens_a_map(with_model):
    import json

    at = open_page("app/predict.py")
    at.radio(key="predict_source").set_value("Upload").run()
    at.file_uploader(key="predict_upload").set_value(("seven.png", png_bytes(seven_photo()), "image/png"))
    at.run()
    assert not at.exception and "Inside the network" in [s.value for s in at.subheader]
    shown = texts(at)
    assert "fixed whitening filters" in shown  # the fast net's stem is set from the data
    headings = [m.value for m in at.markdown if m.value.startswith("**") and ". " in m.value]
    assert headings[0].startswith("**1. conv 1→32 (4x4, stride 2)") and "`32 × 14 × 14`" in headings[0]
    assert "global max pool" in headings[-3] and "logits" in headings[-2] and "softmax" in headings[-1]
    charts = [json.loads(c.proto.spec)["data"][0] for c in at.get("plotly_chart") if "_lands_" not in c.proto.id]
    *_, logits, softmax = charts  # the inside section's bars last
    answer = probability_rows(at)[0]  # the model's answer, as plain HTML bars
    assert softmax["x"] == logits["x"] == [name for name, _ in answer] == [str(d) for d in range(10)]
    np.testing.assert_allclose(softmax["y"], [p for _, p in answer], atol=1e-6)
    assert not np.allclose(logits["y"], softmax["y"])

    layer = at.selectbox(key="predict_upload_inside_layer")
    index = int(next(o for o in layer.options if "maxpool" in o).split(".")[0]) - 1
    layer.set_value(index).run()
    at.number_input(key=f"predict_upload_inside_map_{index}").set_value(5).run()
    assert not at.exception
    captions = [c.value for c in at.caption] + [img.caption for e in at.get("image") for img in e.proto.imgs]
    assert any(c.startswith("map 5 of maxpool 2x2: strongest at") for c in captions), captions
    assert any("no filter of its own" in c for c in captions)
    assert any("input patch it sees there" in c for c in captions)

    # the last conv layer: on demand, the nine test images its chosen map fires on most
    last = max(int(o.split(".")[0]) - 1 for o in layer.options if "conv" in o)
    at.selectbox(key="predict_upload_inside_layer").set_value(last).run()
    at.toggle(key="predict_upload_inside_top").set_value(True).run()
    assert not at.exception
    (grid,) = [e for e in at.get("image") if len(e.proto.imgs) == 9]
    assert all(" · " in img.caption for img in grid.proto.imgs)


def test_the_input_lands_on_the_runs_stored_map(store, monkeypatch, mnist_pretrained, tmp_path):
    import json
    import shutil

    from core.analysis import projection
    from core.data.datasets import load_split
    from core.inference.features import penultimate_features
    from core.inference.preprocess import preprocess
    from core.store.checkpoint import load_model

    root = tmp_path / "pretrained-with-map"
    shutil.copytree(mnist_pretrained[0], root)
    loaded = load_model(root / "mnist-fast")
    images, labels = load_split("mnist", train=False, download=False)  # the tiny test set: 200 images
    projection.save(loaded.path, projection.project_run(loaded, images.numpy(), labels.numpy(), methods=("pca",)))
    monkeypatch.setenv("MNIST_STUDIO_PRETRAINED", str(root))
    at = open_page("app/predict.py")
    at.radio(key="predict_source").set_value("Upload").run()
    photo = png_bytes(seven_photo())
    at.file_uploader(key="predict_upload").set_value(("seven.png", photo, "image/png"))
    at.run()
    assert not at.exception and any("lands here" in m.value for m in at.markdown)
    star = json.loads(next(c for c in at.get("plotly_chart") if c.proto.id.endswith("-predict_upload_lands_chart"))
                      .proto.spec)["data"][-1]
    assert star["name"] == "your input"
    from PIL import Image
    x = preprocess(np.asarray(Image.open(io.BytesIO(photo)).convert("RGBA")), "digits").tensor_input
    expected = projection.place(projection.load(loaded.path), "pca", penultimate_features(loaded, x)[0])
    np.testing.assert_allclose([star["x"][0], star["y"][0]], expected, rtol=1e-4, atol=1e-4)
