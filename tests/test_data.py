import shutil
import subprocess
import sys

import pytest
import torch

from core.data import datasets as data
from core.data.augment import AugmentSpec, affine, augment_batch, stroke_width
from tests.conftest import REPO


def test_registry_names_classes_and_loader():
    assert set(data.DATASETS) == {"mnist", "fashion-mnist"}
    fashion = data.get_dataset("fashion-mnist")
    assert fashion.classes[6] == "Shirt" and fashion.classes[0] == "T-shirt/top" and len(fashion.classes) == 10
    assert fashion.folder == "FashionMNIST" and data.get_dataset("mnist").folder == "MNIST"
    with pytest.raises(ValueError, match="unknown dataset 'cifar'.*mnist"):
        data.get_dataset("cifar")


def test_loads_idx_files_as_torchvision_reads_them(tiny_data_root):
    import torchvision.datasets

    images, labels = data.load_split("mnist", train=True, root=tiny_data_root)
    assert images.shape == (600, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (600,) and labels.dtype == torch.int64 and set(labels.tolist()) == set(range(10))
    test_images, test_labels = data.load_split("fashion-mnist", train=False, root=tiny_data_root)
    assert test_images.shape == (200, 28, 28)
    reference = torchvision.datasets.FashionMNIST(str(tiny_data_root), train=False, download=False)
    assert torch.equal(test_images, reference.data) and torch.equal(test_labels, reference.targets)


@pytest.mark.parametrize("damage", ["truncated", "not idx", "longer", "empty"])
def test_a_damaged_idx_file_is_refused_in_one_line(tmp_path, tiny_data_root, damage):
    shutil.copytree(tiny_data_root / "MNIST", tmp_path / "MNIST")
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    content = path.read_bytes()
    path.write_bytes({"truncated": content[:-5], "not idx": b"PK\x03\x04" + content[4:], "longer": content + b"x",
                      "empty": b""}[damage])
    with pytest.raises(data.DataUnavailableError, match="unreadable files"):
        data.load_split("mnist", train=False, root=tmp_path, download=False)


def test_reading_the_data_and_saving_a_checkpoint_import_no_torchvision(tiny_data_root, tmp_path):
    """Importing torchvision costs a training process about 3 CPU seconds, as much again as torch itself."""
    code = ("import sys; from pathlib import Path; from core.data.datasets import load_split; "
            "from core.models.registry import create_model; from core.store.checkpoint import save_checkpoint; "
            f"images, _ = load_split('mnist', train=True, root=Path({str(tiny_data_root)!r}), download=False); "
            f"save_checkpoint(Path({str(tmp_path / 'last.pt')!r}), create_model('linear'), arch='linear', "
            "model_kwargs={}, dataset='mnist', class_names=list('0123456789'), mean=0.1, std=0.3); "
            "print(len(images), 'torchvision' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["600", "False"]
    assert torch.load(tmp_path / "last.pt", weights_only=True)["versions"]["torchvision"]


def test_missing_data_names_the_root_and_the_variable(tmp_path):
    assert data.missing_files("mnist", tmp_path) and not data.is_available("mnist", tmp_path)
    with pytest.raises(data.DataUnavailableError) as err:
        data.load_split("mnist", train=True, root=tmp_path, download=False)
    assert str(tmp_path) in str(err.value) and "MNIST_STUDIO_DATA" in str(err.value)


def test_split_is_deterministic_disjoint_and_sized():
    train_a, val_a = data.train_val_indices(1000, 0.2, seed=3)
    train_b, val_b = data.train_val_indices(1000, 0.2, seed=3)
    assert torch.equal(train_a, train_b) and torch.equal(val_a, val_b)
    assert len(val_a) == 200 and len(train_a) == 800
    assert not set(train_a.tolist()) & set(val_a.tolist())
    _, val_c = data.train_val_indices(1000, 0.2, seed=4)
    assert not torch.equal(val_a, val_c)


def test_folds_cover_everything_once():
    vals = [data.fold_indices(103, 5, k, seed=0)[1] for k in range(5)]
    assert sorted(torch.cat(vals).tolist()) == list(range(103))


def test_shuffled_batches_shard_exactly_the_global_batches():
    idx = torch.arange(100)
    single = data.shuffled_batches(idx, 20, torch.Generator().manual_seed(0))
    shards = [data.shuffled_batches(idx, 20, torch.Generator().manual_seed(0), rank=r, world_size=2)
              for r in range(2)]
    assert len(single) == 5
    for whole, a, b in zip(single, *shards, strict=True):
        assert torch.equal(torch.cat([a, b]), whole)


def test_mean_std_on_unit_scale():
    images = torch.tensor([[[0, 255]]], dtype=torch.uint8)
    mean, std = data.mean_std(images)
    assert mean == pytest.approx(0.5) and std == pytest.approx(0.7071, abs=1e-3)


def _one_square_batch():
    x = torch.zeros(8, 1, 28, 28)
    x[:, :, 10:14, 4:8] = 1.0
    return x


def test_translate_shifts_each_image_but_keeps_the_ink():
    x = _one_square_batch()
    out = augment_batch(x, AugmentSpec(translate=3), torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.allclose(out.sum((1, 2, 3)), x.sum((1, 2, 3)))  # a 4x4 square 4 px from the edge stays inside
    assert not all(torch.equal(o, x[0]) for o in out)


def test_hflip_mirrors_about_half_the_batch():
    x = _one_square_batch().repeat(8, 1, 1, 1)
    out = augment_batch(x, AugmentSpec(hflip=True), torch.Generator().manual_seed(0))
    flipped = sum(torch.equal(o, x[0].flip(2)) for o in out)
    assert 16 <= flipped <= 48 and flipped + sum(torch.equal(o, x[0]) for o in out) == 64


def test_augmentation_is_reproducible_and_in_range():
    spec = AugmentSpec(translate=2, hflip=True, vflip=True, rotate=15, erase=0.5)
    x = torch.rand(16, 1, 28, 28)
    a = augment_batch(x, spec, torch.Generator().manual_seed(1))
    b = augment_batch(x, spec, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    assert not torch.equal(a, augment_batch(x, spec, torch.Generator().manual_seed(2)))


def test_erase_blanks_a_rectangle():
    x = torch.ones(4, 1, 28, 28)
    out = augment_batch(x, AugmentSpec(erase=1.0), torch.Generator().manual_seed(0))
    erased = (out == 0).sum((1, 2, 3))
    assert (erased > 0).all() and (erased <= 0.25 * 28 * 28 + 28).all()


def test_affine_turns_counter_clockwise_and_zooms_about_the_mnist_centre():
    x = torch.zeros(3, 1, 28, 28)
    x[:, 0, 14, 20] = 1.0  # 6 px right of the centre (14, 14)
    out = affine(x, torch.tensor([0.0, 90.0, 0.0]), torch.tensor([1.0, 1.0, 0.5]))
    assert torch.allclose(out[0], x[0], atol=1e-5)
    assert out[1, 0, 8, 14] == pytest.approx(1.0, abs=1e-4) and out[1].sum() == pytest.approx(1.0, abs=1e-4)
    assert out[2, 0, 14, 17] == pytest.approx(1.0, abs=1e-4)  # half the distance from the centre


def test_scale_and_stroke_augmentations_change_size_and_ink_both_ways():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1.0
    for spec in (AugmentSpec(scale=0.2), AugmentSpec(stroke=1.0)):
        out = augment_batch(x, spec, torch.Generator().manual_seed(0))
        ink = out.sum((1, 2, 3))
        assert spec.active and out.min() >= 0 and out.max() <= 1
        assert (ink < x[0].sum() - 1).any() and (ink > x[0].sum() + 1).any()
    unchanged = augment_batch(x, AugmentSpec(stroke=0.5), torch.Generator().manual_seed(0))
    assert 16 <= sum(torch.equal(o, x[0]) for o in unchanged) <= 48


def test_thinner_and_thicker_strokes_keep_the_peak():
    x = torch.zeros(2, 1, 28, 28)
    x[:, :, 8:20, 12:15] = 0.8
    out = stroke_width(x, torch.tensor([False, True]))
    assert out[0].sum() < x[0].sum() < out[1].sum()
    assert out.amax((1, 2, 3)).tolist() == pytest.approx([0.8, 0.8])
