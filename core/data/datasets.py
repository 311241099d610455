"""Datasets by name, loaded once into memory as uint8 tensors, split and batched by index."""

from __future__ import annotations

import functools
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.store.paths import DATA_ENV, data_root

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class DatasetSpec:
    """What the app needs to know about one dataset."""

    name: str
    title: str
    classes: tuple[str, ...]
    folder: str  # the name of the torchvision dataset class that reads it; torchvision's layout: ROOT/<folder>/raw
    style: str  # "digits" or "fashion": how user images are preprocessed
    image_size: int = 28

    @property
    def loader(self) -> type:
        """The torchvision dataset class that downloads it, imported only when its files are missing: importing
        torchvision takes seconds (read_idx reads the files once they are there)."""
        import torchvision.datasets

        return getattr(torchvision.datasets, self.folder)


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "mnist", "MNIST (handwritten digits)", tuple(str(d) for d in range(10)),
        "MNIST", "digits",
    ),
    "fashion-mnist": DatasetSpec(
        "fashion-mnist", "Fashion-MNIST (Zalando clothing)",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        "FashionMNIST", "fashion",
    ),
}


class DataUnavailableError(RuntimeError):
    """The dataset files are missing and could not be downloaded."""


def get_dataset(name: str) -> DatasetSpec:
    """The spec for `name`, or a ValueError listing the known names."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]


def raw_dir(name: str, root: Path | None = None) -> Path:
    """The folder torchvision reads the raw IDX files of `name` from."""
    return (root or data_root()) / get_dataset(name).folder / "raw"


def missing_files(name: str, root: Path | None = None) -> list[Path]:
    """Raw files of `name` that are not on disk (uncompressed, as torchvision checks)."""
    folder = raw_dir(name, root)
    return [folder / f for f in RAW_FILES if not (folder / f).is_file()]


def is_available(name: str, root: Path | None = None) -> bool:
    """True when every raw file of `name` is present (no download attempted)."""
    return not missing_files(name, root)


IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes, the only one MNIST and Fashion-MNIST use


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (MNIST's format: zero, zero, type, rank, big-endian sizes, the bytes).

    Read here rather than through torchvision's dataset class because importing torchvision costs about 3 s
    of CPU (it pulls in torch._dynamo), as much again as importing torch: every training process paid it
    just to read four files that exist. torchvision still downloads missing files (`DatasetSpec.loader`).
    """
    data = Path(path).read_bytes()
    if len(data) < 4 or data[:3] != bytes([0, 0, IDX_UBYTE]):
        raise ValueError(f"{Path(path).name} is not an IDX file of unsigned bytes")
    start = 4 + 4 * data[3]
    shape = struct.unpack(f">{data[3]}I", data[4:start]) if len(data) >= start else None
    if shape is None or len(data) != start + math.prod(shape):
        raise ValueError(f"{Path(path).name} is truncated or longer than its header says")
    return np.frombuffer(data, np.uint8, offset=start).reshape(shape).copy()


def _read_split(folder: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    prefix = "train" if train else "t10k"
    images, labels = read_idx(folder / f"{prefix}-images-idx3-ubyte"), read_idx(folder / f"{prefix}-labels-idx1-ubyte")
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{prefix} images {images.shape} and labels {labels.shape} do not match")
    return torch.from_numpy(images), torch.from_numpy(labels).long()


@functools.lru_cache(maxsize=8)
def _load(name: str, train: bool, root: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    spec = get_dataset(name)
    try:
        if is_available(name, Path(root)):
            return _read_split(raw_dir(name, Path(root)), train)
        ds = spec.loader(root, train=train, download=download)
    except Exception as err:  # torchvision raises RuntimeError/URLError/OSError when offline
        missing = ", ".join(p.name for p in missing_files(name, Path(root))) or "unreadable files"
        raise DataUnavailableError(
            f"{spec.title} is not available under {Path(root) / spec.folder / 'raw'} "
            f"(missing: {missing}) and could not be downloaded ({type(err).__name__}: {err}). "
            f"Set {DATA_ENV} to a folder holding {spec.folder}/raw, or connect to the internet."
        ) from err
    return ds.data.contiguous(), ds.targets.long().contiguous()


def load_split(name: str, train: bool, root: Path | None = None, download: bool = True):
    """(images uint8 [N,28,28], labels int64 [N]) of the train or test split, cached per process."""
    return _load(name, train, str(root or data_root()), download)


def train_val_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic shuffle of range(n) cut into (train, validation) indices."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_fraction))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def fold_indices(n: int, folds: int, fold: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) indices for fold `fold` (0-based) of a seeded k-fold split."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    parts = perm.tensor_split(folds)
    val = parts[fold]
    train = torch.cat([p for i, p in enumerate(parts) if i != fold])
    return train.sort().values, val.sort().values


def mean_std(images: torch.Tensor) -> tuple[float, float]:
    """Pixel mean and standard deviation of uint8 images, on the 0..1 scale."""
    x = images.float().div_(255)
    return float(x.mean()), float(x.std())


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B,H,W] -> float [B,1,H,W] in 0..1."""
    return images.unsqueeze(1).float().div_(255)


def normalise(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Standardise a 0..1 batch with the training split's statistics."""
    return (x - mean) / std


def shuffled_batches(indices: torch.Tensor, batch_size: int, generator: torch.Generator,
                     rank: int = 0, world_size: int = 1) -> list[torch.Tensor]:
    """Index batches over a fresh permutation of `indices`; rank r of w takes every w-th batch slot.

    The permutation is the same on every rank (same generator seed); each batch of the global size is
    cut into `world_size` equal shards, so the ranks together see exactly the single-process batches.
    A last partial batch is dropped (it would upset batch norm and the step count), unless it is the only one.
    """
    order = indices[torch.randperm(len(indices), generator=generator)]
    n_full = len(order) // batch_size
    batches = [order[i * batch_size:(i + 1) * batch_size] for i in range(n_full)] or [order]
    return [b.tensor_split(world_size)[rank] for b in batches]
