"""core.analysis.projection: the test images' features in 2-D, stored atomically, and where a new input lands."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from core.analysis import projection
from core.inference.features import penultimate_features
from core.models.registry import create_model
from core.store.checkpoint import LoadedModel
from tests.idx import synthetic_digits

DIGITS = [str(d) for d in range(10)]


def test_pca_finds_the_direction_the_points_spread_along():
    rng = np.random.default_rng(0)
    t = rng.normal(size=(300, 1))
    direction = np.array([[3.0, 4.0, 0.0]]) / 5
    points = 5 + t * 10 * direction + rng.normal(scale=0.01, size=(300, 3))
    mean, axes = projection.pca(points)
    np.testing.assert_allclose(mean, points.mean(axis=0), rtol=1e-5)
    assert axes.shape == (2, 3) and abs(axes[0] @ direction[0]) == pytest.approx(1.0, abs=1e-3)
    assert abs(axes[0] @ axes[1]) < 1e-5


def test_a_projection_is_written_atomically_and_reloaded(tmp_path):
    coords = {"pca": np.arange(8, dtype=np.float32).reshape(4, 2), "umap": np.ones((4, 2), np.float32)}
    saved = projection.Projection(coords, np.array([0, 1, 2, 3]), np.array([0, 1, 2, 2]),
                                  np.zeros(5, np.float32), np.eye(2, 5, dtype=np.float32))
    path = projection.save(tmp_path, saved)
    assert path == tmp_path / "projection.npz" and [p.name for p in tmp_path.iterdir()] == ["projection.npz"]
    loaded = projection.load(tmp_path)
    for method in ("pca", "umap"):
        np.testing.assert_array_equal(loaded.coords[method], coords[method])
    np.testing.assert_array_equal(loaded.preds, [0, 1, 2, 2])
    assert projection.load(tmp_path / "missing") is None
    path.write_bytes(b"not an archive")
    assert projection.load(tmp_path) is None


def test_a_test_image_lands_on_its_own_stored_point():
    torch.manual_seed(0)
    loaded = LoadedModel(create_model("cnn2").eval(), "cnn2", "mnist", DIGITS, 0.13, 0.31, False, Path("."))
    images, labels = synthetic_digits(120, seed=3)
    bar, stages = io.StringIO(), []
    result = projection.project_run(loaded, images, labels, progress=bar, report=stages.append)
    assert stages == ["features", "umap"]
    epochs = [tuple(map(int, line.split())) for line in bar.getvalue().replace("\r", "\n").split("\n") if line]
    assert epochs[-1][0] == epochs[-1][1] > 100 and epochs == sorted(epochs)  # umap-learn's epochs, done/total
    assert result.coords["pca"].shape == result.coords["umap"].shape == (120, 2)
    test_features = penultimate_features(loaded, images)
    assert test_features.shape == (120, 32 * 7 * 7)
    for i in (0, 57, 119):
        alone = penultimate_features(loaded, images[i:i + 1])[0]
        np.testing.assert_allclose(projection.place(result, "pca", alone), result.coords["pca"][i], atol=1e-3)
        np.testing.assert_allclose(projection.place(result, "umap", alone, test_features),
                                   result.coords["umap"][i], atol=1e-3)
    between = (test_features[0] + test_features[1]) / 2  # a new input lands among its neighbours
    spot = projection.place(result, "umap", between, test_features)
    lows, highs = result.coords["umap"].min(axis=0), result.coords["umap"].max(axis=0)
    assert (lows <= spot).all() and (spot <= highs).all()
    with pytest.raises(ValueError, match="test images' features"):
        projection.place(result, "umap", between)


def test_the_classes_that_mix_most_on_a_map():
    rng = np.random.default_rng(1)
    mixed = rng.normal(size=(200, 2))  # classes 0 and 1 share one cloud
    apart = rng.normal(size=(100, 2)) + 50  # class 2 lies far away
    coords = np.concatenate([mixed, apart])
    labels = np.array([0, 1] * 100 + [2] * 100)
    (first, *_rest) = projection.overlaps(coords, labels, ["shirt", "T-shirt", "bag"])
    assert first[:2] == ("shirt", "T-shirt") and 0.3 < first[2] <= 0.7
    assert all(share == 0 for a, b, share in _rest if "bag" in (a, b))
