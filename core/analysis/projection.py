"""Where an image lands among all the others: the test set's penultimate-layer features in 2-D.

`compute` projects the features of a run's test images with PCA (exact, linear) and UMAP (McInnes et al.
2018; `umap-learn`); `save`/`load` keep the coordinates in the run directory as one small (float16),
atomically written `projection.npz` (core.analysis.projection_job makes it in the background). `overlaps`
names the classes that mix most, by nearest-neighbour confusion in a projection.

`place` puts a new input on the same maps: PCA by its own projection (exact); UMAP the way umap-learn's
`transform` starts, at the distance-weighted mean of the positions of its nearest test images in feature
space (a test image lands on its own stored point), without transform's further optimisation epochs. Measured
reason: `transform` needs the fitted reducer (its neighbour graph and search index), which only pickle can
store, and unpickling is not safe to do on a file that may come from an imported archive; refitting it when a
page opens takes 131 s for 10,000 points on this 2-core machine (load average 9).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.store.atomic import write_npz

FILE_NAME = "projection.npz"
METHODS = ("pca", "umap")
NEIGHBOURS = 10
FLOAT16_MAX = 60000.0


@dataclass
class Projection:
    """2-D coordinates of the test images by each method, their labels and predictions, and the PCA."""

    coords: dict[str, np.ndarray]  # method -> float32 [N, 2]
    labels: np.ndarray  # int64 [N]
    preds: np.ndarray  # int64 [N]
    pca_mean: np.ndarray  # float32 [D]
    pca_axes: np.ndarray  # float32 [2, D]


def pca(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], the two principal axes [2, D]) of features [N, D], signs fixed for reproducibility."""
    x = np.asarray(features, np.float64)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = vt[:2]
    axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    return mean.astype(np.float32), axes.astype(np.float32)


def umap_coords(features: np.ndarray, seed: int = 0, progress=None) -> np.ndarray:
    """UMAP of features [N, D] to float32 [N, 2] (15 neighbours, min_dist 0.1: umap-learn's defaults).

    `progress`, a file-like object, receives umap-learn's epoch bar as "done total" lines.
    """
    import umap  # here, not at the top: importing it compiles numba code (seconds)

    n_neighbors = min(15, max(2, len(features) - 1))
    bar = {} if progress is None else {"disable": False, "file": progress, "bar_format": "{n} {total}\n",
                                       "mininterval": 0.5}
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, random_state=seed, n_jobs=1, tqdm_kwds=bar)
    return reducer.fit_transform(np.asarray(features, np.float32)).astype(np.float32)


def compute(features: np.ndarray, labels: np.ndarray, preds: np.ndarray, methods=METHODS,
            progress=None) -> Projection:
    """Both projections of the test images' features [N, D] (`progress`: see umap_coords)."""
    mean, axes = pca(features)
    coords = {"pca": (np.asarray(features, np.float32) - mean) @ axes.T}
    if "umap" in methods:
        coords["umap"] = umap_coords(features, progress=progress)
    return Projection(coords, np.asarray(labels, np.int64), np.asarray(preds, np.int64), mean, axes)


def _compact(coords: np.ndarray) -> np.ndarray:
    """float16 coordinates (a map's points need ~3 digits; 80 KB instead of 160 KB for 10,000 points, both
    methods), float32 for the rare map whose values float16 cannot hold."""
    coords = np.asarray(coords, np.float32)
    return coords.astype(np.float16) if np.isfinite(coords).all() and np.abs(coords).max(initial=0) < FLOAT16_MAX \
        else coords


def save(run_dir: Path, projection: Projection) -> Path:
    """Write the projection into the run directory atomically (readers never see half a file)."""
    path = Path(run_dir) / FILE_NAME
    coords = {f"coords_{m}": _compact(c) for m, c in projection.coords.items()}
    write_npz(path, labels=projection.labels.astype(np.uint8), preds=projection.preds.astype(np.uint8),
              pca_mean=projection.pca_mean, pca_axes=projection.pca_axes, **coords)
    return path


def load(run_dir: Path) -> Projection | None:
    """The stored projection of a run, or None when it has none (or an unreadable one)."""
    path = Path(run_dir) / FILE_NAME
    try:
        with np.load(path, allow_pickle=False) as data:
            coords = {m: data[f"coords_{m}"].astype(np.float32) for m in METHODS if f"coords_{m}" in data}
            return Projection(coords, data["labels"].astype(np.int64), data["preds"].astype(np.int64),
                              data["pca_mean"], data["pca_axes"])
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def place(projection: Projection, method: str, feature: np.ndarray, test_features: np.ndarray | None = None,
          k: int = NEIGHBOURS) -> np.ndarray:
    """Where one input with penultimate features [D] lands on `method`'s map: float32 [2].

    PCA needs nothing else; UMAP needs the test images' features (those the map was made from).
    """
    x = np.asarray(feature, np.float32).reshape(-1)
    if method == "pca":
        return (x - projection.pca_mean) @ projection.pca_axes.T
    if test_features is None:
        raise ValueError("placing on the UMAP map needs the test images' features")
    distances = np.linalg.norm(np.asarray(test_features, np.float32) - x, axis=1)
    nearest = np.argsort(distances, kind="stable")[:k]
    if distances[nearest[0]] <= 1e-6 * max(1.0, float(np.linalg.norm(x))):
        return projection.coords[method][nearest[0]].copy()
    weights = 1.0 / distances[nearest]
    return (weights[:, None] * projection.coords[method][nearest]).sum(axis=0) / weights.sum()


def overlaps(coords: np.ndarray, labels: np.ndarray, class_names: list[str], k: int = NEIGHBOURS,
             top: int = 3) -> list[tuple[str, str, float]]:
    """The class pairs that mix most on a map: (class a, class b, share of a's and b's nearest neighbours
    in 2-D that belong to the other), most mixed first."""
    from scipy.spatial import cKDTree  # imports in about 1 s on a loaded machine, sklearn.neighbors in 5

    labels = np.asarray(labels)
    n_classes = len(class_names)
    coords = np.asarray(coords, np.float64)
    _, index = cKDTree(coords).query(coords, k=min(k + 1, len(coords)))
    index = index.reshape(len(coords), -1)
    neighbour_labels = labels[index[:, 1:]]
    confusion = np.zeros((n_classes, n_classes))
    np.add.at(confusion, (np.repeat(labels, neighbour_labels.shape[1]), neighbour_labels.reshape(-1)), 1)
    totals = confusion.sum(axis=1)
    pairs = []
    for a in range(n_classes):
        for b in range(a + 1, n_classes):
            both = totals[a] + totals[b]
            if both:
                pairs.append((class_names[a], class_names[b], float((confusion[a, b] + confusion[b, a]) / both)))
    return sorted(pairs, key=lambda p: -p[2])[:top]


def project_run(loaded, images: np.ndarray, labels: np.ndarray, methods=METHODS, progress=None,
                report=None) -> Projection:
    """Both projections of a model's test images (uint8 [N, 28, 28]) and their true labels.

    `report(stage)` is called as each stage starts (features, umap); `progress`: see umap_coords.
    """
    import torch

    from core.inference.features import penultimate_features
    from core.inference.predictor import model_probs

    report = report or (lambda stage: None)
    report("features")
    features = penultimate_features(loaded, images)
    x = torch.as_tensor(np.asarray(images)).float().div(255).reshape(-1, 1, 28, 28)
    preds = model_probs(loaded, x).argmax(axis=1)
    report("umap")
    return compute(features, labels, preds, methods, progress)
