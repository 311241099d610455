"""What the Data page shows about a dataset: class balance, pixel statistics, samples, augmentation, download.

Everything here is a pure function of arrays (numpy, or torch where training's own code is reused), except
`download_dataset`, which fetches torchvision's resource files of a dataset into the app's data folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import http.client
import os
import shutil
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from core.data.augment import AugmentSpec, augment_batch
from core.data.datasets import DataUnavailableError, get_dataset, raw_dir, to_unit_float, train_val_indices
from core.store.paths import DATA_ENV, data_root

SPLITS = ("train", "validation", "test")


def _labels(labels, num_classes: int) -> np.ndarray:
    y = np.asarray(labels).astype(np.int64, copy=False)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got values in [{y.min()}, {y.max()}]")
    return y


def split_counts(train_labels, test_labels, num_classes: int, val_fraction: float,
                 seed: int) -> dict[str, np.ndarray]:
    """Images per class in the train, validation and test splits, cut exactly as training cuts them."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    y_train = _labels(train_labels, num_classes)
    y_test = _labels(test_labels, num_classes)
    train_idx, val_idx = train_val_indices(len(y_train), val_fraction, seed)
    return {
        "train": np.bincount(y_train[train_idx.numpy()], minlength=num_classes),
        "validation": np.bincount(y_train[val_idx.numpy()], minlength=num_classes),
        "test": np.bincount(y_test, minlength=num_classes),
    }


def balance_rows(counts: dict[str, np.ndarray], class_names: Sequence[str]) -> list[dict]:
    """Table rows: per class, the count and the share (percent of that split) of every split."""
    rows = []
    totals = {split: int(counts[split].sum()) for split in SPLITS}
    for c, name in enumerate(class_names):
        row: dict = {"class": str(name)}
        for split in SPLITS:
            n = int(counts[split][c])
            row[split] = n
            row[f"{split} %"] = round(100.0 * n / totals[split], 2) if totals[split] else 0.0
        rows.append(row)
    return rows


def imbalance_ratio(counts) -> float:
    """Largest over smallest class count (1.0 = perfectly balanced; inf when a class is absent)."""
    c = np.asarray(counts, dtype=np.float64)
    if c.size == 0 or c.max() == 0:
        return float("nan")
    return float("inf") if c.min() == 0 else float(c.max() / c.min())


def value_counts(images) -> np.ndarray:
    """How often each pixel value 0..255 occurs in uint8 images (int64 [256]), counted in chunks to save memory."""
    x = np.asarray(images)
    if x.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got dtype {x.dtype}")
    flat = x.reshape(-1)
    counts = np.zeros(256, dtype=np.int64)
    for start in range(0, flat.size, 1 << 22):
        counts += np.bincount(flat[start:start + (1 << 22)], minlength=256)
    return counts


def pixel_stats(images) -> dict:
    """Mean and standard deviation on the 0..1 scale (what training normalises with), the share of black
    pixels, and the 256 `value_counts` they are computed from (exactly, without a float copy of the split)."""
    counts = value_counts(images)
    n = float(counts.sum())
    if n == 0:
        raise ValueError("no images")
    values = np.arange(256) / 255.0
    mean = float((counts * values).sum() / n)
    var = float((counts * (values - mean) ** 2).sum() / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "std": var ** 0.5, "zero_share": float(counts[0] / n), "images": int(np.shape(images)[0]),
            "value_counts": counts}


def pixel_histogram(counts, bins: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(bin edges on 0..256, counts per bin) from the 256 value counts; `bins` must divide 256."""
    c = np.asarray(counts, dtype=np.int64)
    if c.shape != (256,):
        raise ValueError(f"counts must hold one count per pixel value (256), got shape {c.shape}")
    if bins < 1 or 256 % bins:
        raise ValueError(f"bins must divide 256, got {bins}")
    return np.arange(0, 257, 256 // bins), c.reshape(bins, 256 // bins).sum(axis=1)


def class_mean_images(images, labels, num_classes: int) -> np.ndarray:
    """The average image of each class, uint8 [C,H,W] (zeros for a class with no images)."""
    x = np.asarray(images)
    y = _labels(labels, num_classes)
    if x.ndim != 3 or x.shape[0] != y.shape[0]:
        raise ValueError(f"images must be [N,H,W] with N = {y.shape[0]}, got shape {x.shape}")
    means = np.zeros((num_classes, *x.shape[1:]), dtype=np.float64)
    for c in range(num_classes):
        members = x[y == c]
        if len(members):
            means[c] = members.mean(axis=0, dtype=np.float64)
    return np.clip(np.rint(means), 0, 255).astype(np.uint8)


def class_mean_intensity(images, labels, num_classes: int) -> np.ndarray:
    """Mean pixel value (0..1) of each class; 0 for a class with no images."""
    x = np.asarray(images)
    y = _labels(labels, num_classes)
    return np.array([x[y == c].mean(dtype=np.float64) / 255.0 if np.any(y == c) else 0.0
                     for c in range(num_classes)])


def samples_per_class(labels, num_classes: int, per_class: int, seed: int) -> list[np.ndarray]:
    """For each class, up to `per_class` random indices of its images (sorted draw of a seeded permutation)."""
    if per_class < 0:
        raise ValueError(f"per_class must be >= 0, got {per_class}")
    y = _labels(labels, num_classes)
    order = np.random.default_rng(seed).permutation(len(y))
    return [order[y[order] == c][:per_class].astype(np.int64) for c in range(num_classes)]


def enlarge(image, size: int = 112) -> np.ndarray:
    """Nearest-neighbour upscale of a [H,W] (or [H,W,C]) image so its height is about `size` pixels."""
    a = np.asarray(image)
    if a.ndim not in (2, 3) or a.shape[0] == 0:
        raise ValueError(f"image must be [H,W] or [H,W,C], got shape {a.shape}")
    factor = max(1, round(size / a.shape[0]))
    return a.repeat(factor, axis=0).repeat(factor, axis=1)


def image_strip(images, size: int = 84, gap: int = 4, background: int = 128) -> np.ndarray:
    """Images [N,H,W] side by side in one uint8 picture, each enlarged to ~`size` px, `gap` px apart."""
    x = np.asarray(images, dtype=np.uint8)
    if x.ndim != 3:
        raise ValueError(f"images must be [N,H,W], got shape {x.shape}")
    if x.shape[0] == 0:
        return np.full((size, size), background, dtype=np.uint8)
    tiles = [enlarge(im, size) for im in x]
    h, w = tiles[0].shape
    strip = np.full((h, len(tiles) * (w + gap) - gap), background, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        strip[:, i * (w + gap):i * (w + gap) + w] = tile
    return strip


def augment_preview(image, spec: AugmentSpec, n: int, seed: int) -> np.ndarray:
    """`n` augmented variants of one uint8 [H,W] image, uint8 [n,H,W], made by training's `augment_batch`."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    x = torch.as_tensor(np.asarray(image, dtype=np.uint8))
    if x.ndim != 2:
        raise ValueError(f"image must be [H,W], got shape {tuple(x.shape)}")
    batch = to_unit_float(x.expand(n, *x.shape).contiguous())
    out = augment_batch(batch, spec, torch.Generator().manual_seed(seed))
    return (out[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


# ---- download -----------------------------------------------------------------------------------------

Progress = Callable[[float, str], None]


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, target: Path, md5: str | None, timeout: float, report: Callable[[float], None]) -> None:
    """Stream `url` into `target` (via a temporary file), reporting the fraction done; checks the MD5."""
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "mnist-studio"}),
                                    timeout=timeout) as response, open(partial, "wb") as f:
            total = response.length or 0
            done = 0
            while chunk := response.read(1 << 16):
                f.write(chunk)
                done += len(chunk)
                report(min(done / total, 1.0) if total else 0.0)
        if md5 and _md5(partial) != md5:
            raise ValueError(f"checksum mismatch for {url} (the download is corrupt)")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _gunzip(source: Path, target: Path) -> None:
    partial = target.with_name(target.name + ".part")
    try:
        with gzip.open(source, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    source.unlink(missing_ok=True)


@contextlib.contextmanager
def one_download_at_a_time(root: Path):
    """Hold the download lock (a lock on the data folder itself, no file written), or raise DataUnavailableError
    at once when another download (from any page, tab or process) holds it: one download at a time."""
    fd = os.open(root, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataUnavailableError("another dataset download is in progress on this server; try again when "
                                       "it has finished") from None
        yield
    finally:
        os.close(fd)


def download_dataset(name: str, root: Path | None = None, progress: Progress | None = None, *,
                     mirrors: Sequence[str] | None = None, resources: Sequence[tuple[str, str]] | None = None,
                     timeout: float = 30.0) -> list[Path]:
    """Download every resource file of dataset `name` (torchvision's list and mirrors) into ROOT/<Folder>/raw.

    Files already there are kept. `progress(fraction 0..1, text)` is called as bytes arrive. Returns the
    uncompressed files; raises DataUnavailableError, saying what failed and what to do, when a file cannot
    be fetched from any mirror (for instance on a machine without internet).
    """
    spec = get_dataset(name)
    root = Path(root or data_root())
    mirrors = list(mirrors if mirrors is not None else getattr(spec.loader, "mirrors", []))
    resources = list(resources if resources is not None else spec.loader.resources)
    report = progress or (lambda fraction, text: None)
    folder = raw_dir(name, root)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataUnavailableError(f"cannot create {folder}: {err}. Set {DATA_ENV} to a writable folder.") from err
    with one_download_at_a_time(root):
        return _download_files(spec, folder, mirrors, resources, report, timeout)


def _download_files(spec, folder: Path, mirrors: list[str], resources: list[tuple[str, str]], report: Progress,
                    timeout: float) -> list[Path]:
    """download_dataset's work, under the download lock."""
    done: list[Path] = []
    share = 1.0 / max(1, len(resources))
    for i, (filename, md5) in enumerate(resources):
        target = folder / filename.removesuffix(".gz")
        if target.is_file():
            report((i + 1) * share, f"{target.name} is already there")
            done.append(target)
            continue
        errors = []
        for mirror in mirrors:
            url = f"{mirror}{filename}"
            report(i * share, f"downloading {filename} from {mirror}")
            try:
                _fetch(url, folder / filename, md5, timeout,
                       lambda f, i=i, name=filename: report((i + f) * share, f"downloading {name}"))
                break
            except (OSError, ValueError, http.client.HTTPException) as err:
                errors.append(f"{url}: {getattr(err, 'reason', None) or err}")
        else:
            tried = "; ".join(errors) or "no mirrors are known"
            raise DataUnavailableError(
                f"could not download {spec.title} file {filename} ({tried}). This machine may have no internet "
                f"access: copy the four files {{train,t10k}}-*-ubyte into {folder} by hand, or set "
                f"{DATA_ENV} to a folder that holds them.")
        try:
            if filename.endswith(".gz"):
                _gunzip(folder / filename, target)
        except (OSError, EOFError) as err:
            raise DataUnavailableError(f"{filename} was downloaded but could not be unpacked: {err}") from err
        report((i + 1) * share, f"{target.name} done")
        done.append(target)
    return done
