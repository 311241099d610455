"""core.predict: batched probabilities, top-k, disagreement, warnings, robustness probe, tables, CLI."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from core import predict as predict_cli
from core.inference import predictor as predict
from core.inference.preprocess import Preprocessed, ink_stats, preprocess
from core.models.registry import create_model
from core.store.checkpoint import LoadedModel, save_checkpoint
from tests.conftest import REPO

DIGITS = [str(d) for d in range(10)]


def templates(seed: int = 0) -> np.ndarray:
    """Ten random binary 28x28 patterns, one per class."""
    return (np.random.default_rng(seed).random((10, 28, 28)) < 0.15).astype(np.float32)


def template_model(pats: np.ndarray, scale: float = 1.0, tta_flip: bool = False) -> LoadedModel:
    """A linear model with fixed weights: class k's weights are pattern k minus its mean (k wins on pattern k)."""
    model = create_model("linear")
    flat = pats.reshape(10, -1)
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor(flat - flat.mean(1, keepdims=True)) * scale)
        model[1].bias.zero_()
    return LoadedModel(model.eval(), "linear", "mnist", DIGITS, 0.0, 1.0, tta_flip, Path("."))


def as_input(x: np.ndarray) -> Preprocessed:
    return Preprocessed(x[None].astype(np.float32), [("centred", (x * 255).astype(np.uint8))], False, ink_stats(x))


def png(image: np.ndarray | Image.Image) -> bytes:
    buf = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def drawn_seven(size: int = 280, box=(60, 50, 210, 240), width: int = 18, ink=255, paper=0) -> np.ndarray:
    """A '7' drawn as a canvas would draw it: a top bar and a slanted stem."""
    img = Image.new("L", (size, size), paper)
    left, top, right, bottom = box
    ImageDraw.Draw(img).line([(left, top), (right, top), (left + (right - left) * 0.35, bottom)],
                             fill=ink, width=width, joint="curve")
    return np.asarray(img)


PATS = templates()
MODEL = template_model(PATS)


def test_predict_batch_matches_a_manual_softmax_and_sums_to_one():
    x = np.stack([PATS[3], PATS[8]])[:, None]
    probs = predict.predict_batch({"a": MODEL}, x)["a"]
    logits = MODEL.model(torch.tensor(x)).detach()
    assert probs.shape == (2, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, logits.softmax(1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert list(probs.argmax(1)) == [3, 8]


def test_predict_batch_uses_the_models_normalisation_and_flip_averaging():
    shifted = LoadedModel(MODEL.model, "linear", "mnist", DIGITS, 0.5, 2.0, False, Path("."))
    flipped = LoadedModel(MODEL.model, "linear", "mnist", DIGITS, 0.0, 1.0, True, Path("."))
    x = torch.tensor(PATS[5][None, None])
    got = predict.predict_batch({"norm": shifted, "flip": flipped}, x)
    expect_norm = MODEL.model((x - 0.5) / 2.0).softmax(1).detach().numpy()
    expect_flip = ((MODEL.model(x).softmax(1) + MODEL.model(x.flip(3)).softmax(1)) / 2).detach().numpy()
    np.testing.assert_allclose(got["norm"], expect_norm, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["flip"], expect_flip, rtol=1e-5, atol=1e-6)


def test_small_batches_run_on_one_thread_and_restore_the_setting():
    before = torch.get_num_threads()
    seen = []
    handle = MODEL.model.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    try:
        predict.predict_batch({"a": MODEL}, PATS[:2, None])
        predict.predict_batch({"a": MODEL}, np.zeros((predict.SMALL_BATCH + 1, 1, 28, 28), np.float32))
    finally:
        handle.remove()
    assert seen[0] == 1 and seen[1] == before
    assert torch.get_num_threads() == before


def test_large_batches_agree_with_one_image_at_a_time():
    x = np.repeat(PATS, 10, axis=0)[:, None] * 0.9  # 100 images: past SMALL_BATCH, maybe bf16
    model = {"soft": template_model(PATS, scale=0.05)}  # soft probabilities, so differences would show
    batch = predict.predict_batch(model, x)["soft"]
    one_by_one = np.concatenate([predict.predict_batch(model, img[None])["soft"] for img in x[::10]])
    np.testing.assert_allclose(batch[::10], one_by_one, atol=0.02)
    assert (batch.argmax(1) == np.repeat(np.arange(10), 10)).all()


def test_predict_image_gives_label_confidence_and_sorted_top_k():
    (result,) = predict.predict_image({"tmpl": MODEL}, as_input(PATS[7]), k=4)
    assert (result["model"], result["arch"], result["label"], result["class_name"]) == ("tmpl", "linear", 7, "7")
    assert len(result["probs"]) == 10 and result["confidence"] == pytest.approx(max(result["probs"]))
    probs = [t["prob"] for t in result["top_k"]]
    assert len(probs) == 4 and probs == sorted(probs, reverse=True) and result["top_k"][0]["label"] == 7


def test_top_k_is_clamped_and_names_classes():
    probs = np.array([0.05, 0.5, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    assert [t["label"] for t in predict.top_k(probs, DIGITS, 2)] == [1, 2]
    assert len(predict.top_k(probs, DIGITS, 50)) == 10 and len(predict.top_k(probs, DIGITS, 0)) == 1


def test_disagreement_and_dissenting_models():
    other = template_model(PATS[[1, 0, 2, 3, 4, 5, 6, 7, 8, 9]])  # reads pattern 0 as 1
    models = {"a": MODEL, "b": MODEL, "c": other}
    same = predict.predict_image(models, as_input(PATS[4]))
    assert predict.disagreement(same) is None and predict.dissenting_models(same) == set()
    split = predict.predict_image(models, as_input(PATS[0]))
    message = predict.disagreement(split)
    assert "a says 0" in message and "c says 1" in message
    assert predict.dissenting_models(split) == {"c"}
    tie = predict.predict_image({"a": MODEL, "c": other}, as_input(PATS[0]))
    assert predict.dissenting_models(tie) == {"a", "c"}


def test_low_confidence_warning():
    flat = template_model(PATS, scale=0.0)  # all logits zero: 10% each
    pre = as_input(PATS[2])
    results = predict.predict_image({"flat": flat, "sharp": template_model(PATS, scale=5.0)}, pre)
    low = [w for w in predict.input_warnings(pre, results, "digits") if w.startswith("Low confidence")]
    assert len(low) == 1 and "flat 10%" in low[0] and "sharp" not in low[0]
    assert not any(w.startswith("Low") for w in predict.input_warnings(pre, results[1:], "digits"))


def test_ink_unlike_the_training_data_is_flagged():
    confident = [{"model": "m", "label": 1, "class_name": "1", "confidence": 0.99}]
    typical = preprocess(drawn_seven(), "digits")
    assert predict.input_warnings(typical, confident, "digits") == []
    blob = preprocess(np.pad(np.full((100, 100), 255, np.uint8), 90), "digits")  # a filled square
    (warning,) = predict.input_warnings(blob, confident, "digits")
    assert "unlike the MNIST digits" in warning and "thick or filled" in warning
    faint = Preprocessed(np.zeros((1, 28, 28), np.float32), [], False, ink_stats(np.eye(28, dtype=np.float32) * 0.6))
    assert "thin or faint" in predict.unusual_ink(faint.ink_stats, "digits")
    assert predict.unusual_ink({}, "fashion") is None


def test_robustness_probe_predicts_every_variant_and_marks_changes():
    models = {"a": MODEL, "b": template_model(PATS, scale=3.0)}
    pre = as_input(PATS[6])
    probe = predict.robustness_probe(models, pre)
    assert probe.names[0] == "original" and len(probe.names) == len(probe.images) == 11
    batch = np.stack(probe.images)[:, None]
    for name, probs in predict.predict_batch(models, batch).items():
        assert [a[0] for a in probe.answers[name]] == list(probs.argmax(1))
    table = probe.table()
    assert [row["variant"] for row in table] == probe.names
    for i, row in enumerate(table):
        changed = probe.answers["a"][i][0] != probe.answers["a"][0][0]
        assert row["a"].endswith("✗") == changed
    expected = np.mean([a[0] == probe.answers["a"][0][0] for a in probe.answers["a"][1:]])
    assert probe.stability()["a"] == pytest.approx(expected)
    assert table[0]["a"].startswith("6 · ")


def test_predict_files_keeps_going_past_bad_and_blank_files():
    files = [("good.png", png((PATS[4] * 255).astype(np.uint8))), ("notes.txt", b"hello, not an image"),
             ("blank.png", png(np.zeros((40, 40), np.uint8))), ("cut.png", png(drawn_seven())[:200]),
             ("seven.png", png(drawn_seven(ink=20, paper=235)))]
    out = predict.predict_files({"a": MODEL, "b": MODEL}, files, "digits")
    assert [o.file for o in out] == [name for name, _ in files]
    errors = {o.file: o.error for o in out if o.error}
    assert set(errors) == {"notes.txt", "blank.png", "cut.png"}
    assert all(message.startswith(name + ":") and "\n" not in message for name, message in errors.items())
    assert "blank" in errors["blank.png"]
    good = out[0]
    assert [r["model"] for r in good.results] == ["a", "b"] and good.pre.tensor_input.shape == (1, 28, 28)
    assert out[4].pre.inverted and len(out[4].results) == 2


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def test_every_kind_of_upload_is_predicted_or_refused_in_one_line(mnist_pretrained):
    from core.store.checkpoint import load_model
    from tests.test_images import png_header_only

    root, real = mnist_pretrained
    seven = Image.fromarray(drawn_seven(ink=20, paper=240))  # dark ink on light paper
    ink = np.asarray(seven) < 128
    transparent = np.zeros((280, 280, 4), np.uint8)
    transparent[ink] = (0, 0, 0, 255)  # black strokes on a transparent canvas
    other_frame = Image.new("L", (280, 280), 240)
    good = {
        "photo.jpg": encode(seven.convert("RGB"), "JPEG"),
        "cmyk.jpg": encode(seven.convert("CMYK"), "JPEG"),
        "deep.png": encode(Image.fromarray(np.asarray(seven).astype(np.uint16) * 257), "PNG"),
        "palette.png": encode(seven.convert("P"), "PNG", transparency=255),
        "transparent.png": encode(Image.fromarray(transparent), "PNG"),
        "animated.gif": encode(seven, "GIF", save_all=True, append_images=[other_frame], duration=100),
        "scan.webp": encode(seven, "WEBP"), "scan.bmp": encode(seven, "BMP"),
    }
    bad = {"empty.png": (b"", "empty"), "notes.png": (b"just text", "not a supported image"),
           "cut.jpg": (good["photo.jpg"][:400], "truncated"),
           "dot.png": (encode(Image.new("L", (1, 1)), "PNG"), "too small"),
           "bomb.png": (png_header_only(100_000, 100_000), "too large"),
           "blank.gif": (encode(Image.new("L", (50, 50), 200), "GIF"), "blank")}
    files = [*good.items(), *((name, data) for name, (data, _) in bad.items())]
    out = predict.predict_files({"fast": load_model(root / "mnist-fast")}, files, "digits")
    assert [o.file for o in out] == [name for name, _ in files]
    for o in out:
        if o.file in good:
            assert o.error is None and len(o.results) == 1, o.error
            if real:
                assert o.results[0]["class_name"] == "7", (o.file, o.results[0]["top_k"])
        else:
            assert o.error.startswith(o.file + ": ") and "\n" not in o.error and bad[o.file][1] in o.error
            assert not o.results


def test_results_table_and_csv():
    files = [("one.png", png((PATS[1] * 255).astype(np.uint8))), ("bad.gif", b"GIF89a broken")]
    out = predict.predict_files({"a": MODEL, "b": MODEL}, files, "digits")
    rows = predict.results_table(out, ["a", "b"])
    assert list(rows[0]) == ["file", "a prediction", "a confidence", "b prediction", "b confidence", "agree", "error"]
    assert rows[0]["agree"] is True and rows[0]["error"] == "" and 0 < rows[0]["a confidence"] <= 1
    assert rows[1]["a prediction"] == "" and rows[1]["error"].startswith("bad.gif:") and rows[1]["agree"] is None
    parsed = list(csv.DictReader(io.StringIO(predict.results_csv(rows))))
    assert [r["file"] for r in parsed] == ["one.png", "bad.gif"]
    assert parsed[0]["a prediction"] == rows[0]["a prediction"]
    assert float(parsed[0]["a confidence"]) == pytest.approx(rows[0]["a confidence"])
    assert parsed[1]["a confidence"] == "" and parsed[1]["error"] == rows[1]["error"]
    assert predict.results_csv([]) == ""


def test_default_model_choices_prefer_the_best_pretrained_then_newest_user_runs():
    infos = [SimpleNamespace(name=n, source=s, summary=acc) for n, s, acc in
             [("new", "user", {"test_acc": 0.999}), ("old", "user", None), ("p-lin", "pretrained", {"test_acc": 0.92}),
              ("p-none", "pretrained", {}), ("p-cnn", "pretrained", {"test_acc": 0.99})]]
    assert [i.name for i in predict.default_model_choices(infos)] == ["p-cnn", "p-lin", "p-none"]
    assert [i.name for i in predict.default_model_choices(infos, limit=4)] == ["p-cnn", "p-lin", "p-none", "new"]
    assert [i.name for i in predict.default_model_choices(infos[:2])] == ["new", "old"]
    assert predict.default_model_choices([]) == []


def test_display_stages_start_with_the_raw_image():
    image = drawn_seven()
    pre = preprocess(image, "digits")
    stages = predict.display_stages(image, pre)
    assert stages[0][0] == "raw" and stages[0][1] is not None and stages[1:] == pre.stages
    assert stages[-1][0] == "centred" and stages[-1][1].shape == (28, 28)


def test_a_drawn_seven_is_read_as_seven_anywhere_and_at_any_size(mnist_pretrained):
    root, real = mnist_pretrained
    if not real:
        pytest.skip("needs a model trained on real MNIST")
    from core.store.checkpoint import load_model

    models = {"fast": load_model(root / "mnist-fast")}
    for box, width in [((60, 50, 210, 240), 18), ((10, 10, 70, 90), 8), ((150, 170, 270, 270), 10),
                       ((20, 5, 270, 275), 30)]:
        for ink, paper in [(255, 0), (30, 220)]:
            (result,) = predict.predict_image(models, preprocess(drawn_seven(box=box, width=width, ink=ink,
                                                                             paper=paper), "digits"))
            assert result["class_name"] == "7", (box, width, ink, result["top_k"])


# --- command line ----------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.predict", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def template_run(tmp_path) -> Path:
    """A run directory holding the fixed-weight template model as a real checkpoint."""
    run = tmp_path / "template-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": "mnist", "model": "linear"}))
    save_checkpoint(run / "best.pt", MODEL.model, arch="linear", model_kwargs={}, dataset="mnist",
                    class_names=DIGITS, mean=0.0, std=1.0)
    return run


def test_cli_prints_one_json_line_per_image_per_run(tmp_path, template_run, mnist_pretrained):
    root, real = mnist_pretrained
    seven = tmp_path / "seven.png"
    seven.write_bytes(png(drawn_seven(ink=0, paper=255)))
    pattern = tmp_path / "pattern.png"
    pattern.write_bytes(png((PATS[2] * 255).astype(np.uint8)))
    text = tmp_path / "readme.txt"
    text.write_text("not an image")
    missing = tmp_path / "missing.png"
    proc = run_cli("--run", str(root / "mnist-fast"), "--run", str(template_run), "--top-k", "2",
                   str(seven), str(text), str(pattern), str(missing))
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["file"], r["run"]) for r in lines] == [(str(f), run) for f in (seven, text, pattern, missing)
                                                      for run in ("mnist-fast", "template-run")]
    for record in lines:
        if record["file"] in (str(text), str(missing)):
            assert set(record) == {"file", "run", "error"} and Path(record["file"]).name in record["error"]
        else:
            assert {"label", "class_name", "confidence", "top_k", "warnings"} <= set(record)
            assert len(record["top_k"]) == 2 and record["top_k"][0]["label"] == record["label"]
            assert record["class_name"] == str(record["label"]) and 0 < record["confidence"] <= 1
    assert "not a supported image" in lines[2]["error"] and "cannot read" in lines[6]["error"]
    if real:
        assert lines[0]["label"] == 7


def test_cli_dataset_style_and_bad_arguments(tmp_path, template_run, capsys):
    image = tmp_path / "pattern.png"
    image.write_bytes(png((PATS[9] * 255).astype(np.uint8)))
    assert predict_cli.main(["--run", str(template_run), "--dataset-style", "fashion", str(image)]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["file"] == str(image) and len(record["top_k"]) == 3
    assert record["label"] == 9  # fashion style keeps a full-frame pattern as it is; the model reads its own
    assert predict_cli.main(["--run", str(tmp_path / "nowhere"), str(image)]) == 2
    out = capsys.readouterr()
    assert "no run directory" in out.err and out.out == ""
    assert predict_cli.main(["--run", str(template_run), "--top-k", "0", str(image)]) == 2
    assert "top-k" in capsys.readouterr().err
