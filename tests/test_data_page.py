from core.data import stats as ds
from core.data.datasets import load_split
from tests.conftest import open_page


def image_urls(at) -> list[str]:
    return [img.proto.imgs[0].url for img in at.get("image")]


def balance_table(at) -> dict[str, list[int]]:
    table = at.dataframe[0].value
    return {split: table[split].tolist() for split in ds.SPLITS}


def expected_balance(tiny_data_root, val_fraction, seed):
    _, train_labels = load_split("mnist", True, tiny_data_root, download=False)
    _, test_labels = load_split("mnist", False, tiny_data_root, download=False)
    counts = ds.split_counts(train_labels.numpy(), test_labels.numpy(), 10, val_fraction, seed)
    return {split: counts[split].tolist() for split in ds.SPLITS}


def test_data_page_shows_samples_balance_pixels_and_augmentation(store, tiny_data_root):
    at = open_page("app/data.py")
    assert not at.exception
    assert [s.value for s in at.subheader] == ["Random samples per class", "Class balance of the splits",
                                               "Pixel intensities", "Augmentation preview"]
    assert [m.value for m in at.markdown[:10]] == [f"**{d}**" for d in range(10)]  # one sample row per class

    # class balance: the split training would cut, for the chosen fraction and seed
    assert balance_table(at) == expected_balance(tiny_data_root, 0.1, 0)
    at.slider(key="data_val_fraction").set_value(0.3)
    at.number_input(key="data_split_seed").set_value(5)
    at.run()
    assert not at.exception
    assert balance_table(at) == expected_balance(tiny_data_root, 0.3, 5)
    assert sum(balance_table(at)["validation"]) == 180

    # pixel statistics of the training split, as training computes them
    images, _ = load_split("mnist", True, tiny_data_root, download=False)
    stats = ds.pixel_stats(images.numpy())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Train mean"] == f"{stats['mean']:.4f}" and metrics["Train std"] == f"{stats['std']:.4f}"

    # reshuffle draws other samples; the other images stay
    before = image_urls(at)
    at.button(key="data_reshuffle").click().run()
    after = image_urls(at)
    assert not at.exception
    assert before[:10] != after[:10] and before[10:] == after[10:]

    # augmentation preview: 1 original + 8 variants; changing flags changes the variants only
    at.slider(key="data_aug_translate_mnist").set_value(0).run()
    plain = image_urls(at)[-9:]
    assert len(set(plain)) == 1  # nothing selected: every variant equals the original
    at.checkbox(key="data_aug_hflip_mnist").check()
    at.slider(key="data_aug_rotate_mnist").set_value(30.0)
    at.run()
    assert not at.exception
    augmented = image_urls(at)[-9:]
    assert augmented[0] == plain[0] and len(set(augmented[1:])) > 1

    # the other dataset renders too
    at.radio(key="data_dataset").set_value("fashion-mnist").run()
    assert not at.exception and at.markdown[0].value == "**T-shirt/top**"


def test_data_page_says_what_is_missing_and_where_it_looks(store, tmp_path, monkeypatch):
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("MNIST_STUDIO_DATA", str(empty))
    at = open_page("app/data.py")
    assert not at.exception
    notice = at.warning[0].value
    assert "MNIST_STUDIO_DATA" in notice and str(empty) in notice and "train-images-idx3-ubyte" in notice
    assert at.button(key="data_download").label.startswith("Download MNIST")
    assert not at.subheader  # nothing else is attempted without the data
