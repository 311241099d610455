import gzip
import hashlib
import http.server
import socket
import threading
from functools import partial

import numpy as np
import pytest
import torch

from core.data import stats as ds
from core.data.augment import AugmentSpec, augment_batch
from core.data.datasets import RAW_FILES, DataUnavailableError, load_split, mean_std, to_unit_float, train_val_indices
from tests.idx import synthetic_digits, write_dataset

# ---- class balance ------------------------------------------------------------------------------------

def test_split_counts_cut_exactly_as_training_does():
    train_y = np.arange(100) % 10
    test_y = np.array([0, 0, 1, 9])
    counts = ds.split_counts(train_y, test_y, 10, val_fraction=0.2, seed=3)
    train_idx, val_idx = train_val_indices(100, 0.2, 3)
    assert counts["validation"].tolist() == np.bincount(train_y[val_idx.numpy()], minlength=10).tolist()
    assert counts["train"].tolist() == np.bincount(train_y[train_idx.numpy()], minlength=10).tolist()
    assert counts["train"].sum() == 80 and counts["validation"].sum() == 20
    assert counts["test"].tolist() == [2, 1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert ds.split_counts(train_y, test_y, 10, 0.2, 4)["validation"].tolist() != counts["validation"].tolist()


def test_split_counts_without_validation_and_bad_input():
    counts = ds.split_counts(np.arange(20) % 10, np.arange(10), 10, 0.0, 0)
    assert counts["validation"].sum() == 0 and counts["train"].tolist() == [2] * 10
    with pytest.raises(ValueError, match="val_fraction"):
        ds.split_counts(np.arange(10), np.arange(10), 10, 1.0, 0)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        ds.split_counts(np.array([0, 10]), np.arange(10), 10, 0.1, 0)


def test_balance_rows_give_counts_and_shares():
    counts = {"train": np.array([3, 1]), "validation": np.array([0, 0]), "test": np.array([1, 1])}
    rows = ds.balance_rows(counts, ["a", "b"])
    assert rows[0] == {"class": "a", "train": 3, "train %": 75.0, "validation": 0, "validation %": 0.0,
                       "test": 1, "test %": 50.0}
    assert rows[1]["train %"] == 25.0


def test_imbalance_ratio():
    assert ds.imbalance_ratio([10, 5, 20]) == 4.0
    assert ds.imbalance_ratio([3, 3]) == 1.0
    assert ds.imbalance_ratio([3, 0]) == float("inf")
    assert np.isnan(ds.imbalance_ratio([0, 0]))


# ---- pixels -------------------------------------------------------------------------------------------

def test_pixel_stats_match_the_normalisation_training_uses():
    images, _ = synthetic_digits(300, seed=5)
    stats = ds.pixel_stats(images)
    mean, std = mean_std(torch.from_numpy(images))
    assert stats["mean"] == pytest.approx(mean, abs=1e-6)
    assert stats["std"] == pytest.approx(std, abs=1e-5)
    assert stats["zero_share"] == pytest.approx(float(np.mean(images == 0)))
    assert stats["images"] == 300
    big = np.random.default_rng(0).integers(0, 256, size=(3, 1 << 21), dtype=np.uint8)  # spans several chunks
    assert ds.value_counts(big).tolist() == np.bincount(big.reshape(-1), minlength=256).tolist()


def test_pixel_stats_and_histogram_on_hand_made_images():
    images = np.array([[[0, 255], [255, 0]]], dtype=np.uint8)
    stats = ds.pixel_stats(images)
    assert stats["mean"] == 0.5 and stats["zero_share"] == 0.5
    assert stats["std"] == pytest.approx(np.std([0, 1, 1, 0], ddof=1))
    assert stats["value_counts"][0] == 2 and stats["value_counts"][255] == 2 and stats["value_counts"].sum() == 4
    values = ds.value_counts(np.array([[0, 1, 127, 128, 255]], dtype=np.uint8))
    edges, counts = ds.pixel_histogram(values, bins=2)
    assert edges.tolist() == [0, 128, 256] and counts.tolist() == [3, 2]
    assert ds.pixel_histogram(values, bins=256)[1].tolist() == values.tolist()
    with pytest.raises(ValueError, match="divide 256"):
        ds.pixel_histogram(values, bins=3)
    with pytest.raises(ValueError, match="256"):
        ds.pixel_histogram(values[:10])
    with pytest.raises(ValueError, match="uint8"):
        ds.pixel_stats(images.astype(np.float32))


def test_class_mean_images_and_intensity():
    images = np.zeros((3, 2, 2), dtype=np.uint8)
    images[0] = 100
    images[1] = 200
    images[2, 0, 0] = 255
    labels = np.array([0, 0, 2])
    means = ds.class_mean_images(images, labels, 3)
    assert means.dtype == np.uint8 and means.shape == (3, 2, 2)
    assert (means[0] == 150).all() and (means[1] == 0).all() and means[2].tolist() == [[255, 0], [0, 0]]
    assert ds.class_mean_intensity(images, labels, 3) == pytest.approx([150 / 255, 0.0, 0.25])


# ---- samples and pictures -----------------------------------------------------------------------------

def test_samples_per_class_are_of_their_class_seeded_and_capped():
    labels = np.array([0, 1, 1, 1, 2, 2, 0, 1, 2, 2, 2])
    picks = ds.samples_per_class(labels, 4, per_class=3, seed=0)
    assert [len(p) for p in picks] == [2, 3, 3, 0]
    for c, idx in enumerate(picks):
        assert (labels[idx] == c).all() and len(set(idx.tolist())) == len(idx)
    assert [p.tolist() for p in ds.samples_per_class(labels, 4, 3, seed=0)] == [p.tolist() for p in picks]
    draws = {tuple(ds.samples_per_class(labels, 4, 2, seed=s)[2].tolist()) for s in range(10)}
    assert len(draws) > 1


def test_enlarge_is_nearest_neighbour():
    img = np.array([[0, 255], [10, 20]], dtype=np.uint8)
    big = ds.enlarge(img, 8)
    assert big.shape == (8, 8)
    assert (big[:4, :4] == 0).all() and (big[:4, 4:] == 255).all() and (big[4:, 4:] == 20).all()
    assert ds.enlarge(np.zeros((28, 28)), 112).shape == (112, 112)
    with pytest.raises(ValueError):
        ds.enlarge(np.zeros(5))


def test_image_strip_lays_images_side_by_side():
    images = np.stack([np.full((2, 2), v, dtype=np.uint8) for v in (10, 20, 30)])
    strip = ds.image_strip(images, size=4, gap=1, background=0)
    assert strip.shape == (4, 3 * 4 + 2)
    assert (strip[:, :4] == 10).all() and (strip[:, 4] == 0).all() and (strip[:, 10:] == 30).all()


# ---- augmentation preview -----------------------------------------------------------------------------

def test_augment_preview_is_training_augmentation_of_copies():
    images, _ = synthetic_digits(1, seed=1)
    image = images[0]
    spec = AugmentSpec(translate=2, rotate=15.0, erase=0.5)
    out = ds.augment_preview(image, spec, n=6, seed=7)
    assert out.shape == (6, 28, 28) and out.dtype == np.uint8
    direct = augment_batch(to_unit_float(torch.from_numpy(np.stack([image] * 6))), spec,
                           torch.Generator().manual_seed(7))
    assert np.array_equal(out, (direct[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    assert np.array_equal(ds.augment_preview(image, spec, 6, seed=7), out)
    assert not np.array_equal(ds.augment_preview(image, spec, 6, seed=8), out)
    assert len({v.tobytes() for v in out}) > 1


def test_augment_preview_flags():
    image = np.arange(28 * 28, dtype=np.int64).reshape(28, 28).astype(np.uint8)
    unchanged = ds.augment_preview(image, AugmentSpec(), 3, seed=0)
    assert all(np.array_equal(v, image) for v in unchanged)
    flipped = ds.augment_preview(image, AugmentSpec(hflip=True), 16, seed=0)
    kinds = {("same" if np.array_equal(v, image) else "mirrored" if np.array_equal(v, image[:, ::-1]) else "other")
             for v in flipped}
    assert kinds == {"same", "mirrored"}
    with pytest.raises(ValueError):
        ds.augment_preview(image, AugmentSpec(), 0, seed=0)


# ---- download -----------------------------------------------------------------------------------------

@pytest.fixture
def mirror(tmp_path):
    """A local HTTP mirror serving the tiny MNIST stand-in as torchvision's .gz resource files."""
    source = tmp_path / "source"
    write_dataset(source, "MNIST")
    site = tmp_path / "site"
    site.mkdir()
    resources = []
    for name in RAW_FILES:
        data = gzip.compress((source / "MNIST" / "raw" / name).read_bytes())
        (site / f"{name}.gz").write_bytes(data)
        resources.append((f"{name}.gz", hashlib.md5(data).hexdigest()))
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", resources, source
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


def test_download_fetches_every_file_with_progress_and_falls_back_to_the_next_mirror(mirror, tmp_path):
    url, resources, source = mirror
    root = tmp_path / "data"
    calls = []
    files = ds.download_dataset("mnist", root, lambda f, text: calls.append((f, text)),
                                mirrors=[closed_port_url(), url], resources=resources, timeout=5)
    assert [f.name for f in files] == list(RAW_FILES)
    for name in RAW_FILES:
        assert (root / "MNIST" / "raw" / name).read_bytes() == (source / "MNIST" / "raw" / name).read_bytes()
    assert not list((root / "MNIST" / "raw").glob("*.gz")) and not list((root / "MNIST" / "raw").glob("*.part"))
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and all(0 <= f <= 1 for f in fractions)
    images, labels = load_split("mnist", train=False, root=root, download=False)  # the app reads them
    assert images.shape == (200, 28, 28) and len(labels) == 200
    # a second call finds everything there and needs no network at all
    again = []
    ds.download_dataset("mnist", root, lambda f, text: again.append(text), mirrors=[], resources=resources)
    assert all("already there" in t for t in again) and len(again) == 4


def test_download_rejects_a_corrupt_file(mirror, tmp_path):
    url, resources, _ = mirror
    bad = [(resources[0][0], "0" * 32)]
    with pytest.raises(DataUnavailableError, match="checksum mismatch"):
        ds.download_dataset("mnist", tmp_path / "data", mirrors=[url], resources=bad, timeout=5)
    assert not list((tmp_path / "data" / "MNIST" / "raw").iterdir())


def test_download_without_a_reachable_mirror_fails_with_a_clear_message(tmp_path):
    with pytest.raises(DataUnavailableError) as err:
        ds.download_dataset("fashion-mnist", tmp_path, mirrors=[closed_port_url()], timeout=5)
    text = str(err.value)
    assert "could not download Fashion-MNIST" in text and "MNIST_STUDIO_DATA" in text
    assert str(tmp_path / "FashionMNIST" / "raw") in text
    with pytest.raises(ValueError, match="unknown dataset"):
        ds.download_dataset("cifar", tmp_path)
