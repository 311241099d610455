"""The Predict page in AppTest: renders with and without models, uploads one or many files, bad files."""

from __future__ import annotations

import io

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
