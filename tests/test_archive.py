"""Run archives: a round trip gives a run every page lists; hostile archives are refused in one line and leave
nothing behind."""

import io
import stat
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from core.analysis import projection
from core.share import main
from core.store import archive as archive_module
from core.store import runs
from core.store.archive import ArchiveError, export_archive, import_archive
from core.store.checkpoint import load_model
from core.views.catalog import list_finished_runs
from tests.share_runs import make_run


@pytest.fixture
def archive(store, tmp_path) -> Path:
    """A genuine archive of a finished run, made outside the runs root."""
    run = make_run(tmp_path / "elsewhere", "digits-cnn2")
    return export_archive(run, tmp_path / "digits-cnn2.zip")


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_zip(path: Path, files: dict, compression=zipfile.ZIP_DEFLATED) -> Path:
    """A zip of `files` ({name or ZipInfo: bytes})."""
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def assert_nothing_written(store: Path) -> None:
    assert not store.exists() or list(store.iterdir()) == []
    assert [p.name for p in store.parent.iterdir() if p.name.startswith(".import-")] == []


def test_round_trip_gives_a_run_every_page_lists(archive, store):
    path = import_archive(archive)
    assert path == store / "digits-cnn2"
    assert set(members(archive)) == {"config.json", "status.json", "summary.json", "metrics.jsonl", "best.pt",
                                     "test_outputs.npz"}
    listed = {info.path: info for info in list_finished_runs()}  # what Evaluate, Predict and Compare offer
    assert path in listed and listed[path].state == "completed" and listed[path].source == "user"
    assert load_model(path).arch == "cnn2"
    again = import_archive(archive)  # a name that exists already gets a new one
    assert again == store / "digits-cnn2-2" and len(runs.list_runs(include_pretrained=False)) == 2


def test_a_runs_map_of_the_test_images_travels_with_it(store, tmp_path):
    run = make_run(tmp_path / "elsewhere", "digits-cnn2")
    rng = np.random.default_rng(0)
    features, labels = rng.normal(size=(40, 6)), rng.integers(0, 10, 40)
    projection.save(run, projection.compute(features, labels, labels, methods=("pca",)))
    imported = projection.load(import_archive(export_archive(run, tmp_path / "with-map.zip")))
    assert imported is not None and imported.labels.tolist() == labels.tolist()
    np.testing.assert_allclose(imported.coords["pca"], projection.load(run).coords["pca"])


def test_an_upload_is_named_after_its_file_or_else_after_what_it_holds(archive, store):
    assert import_archive(io.BytesIO(archive.read_bytes()), "my model.zip").name == "imported-mnist-cnn2"
    assert import_archive(io.BytesIO(archive.read_bytes()), "mine.zip").name == "mine"


def test_cli_imports_and_prints_the_new_run_folder_last(archive, store, capsys):
    assert main(["import", str(archive)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(store / "digits-cnn2")


class Exploit:
    """Unpickling this creates a marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def hostile(kind: str, genuine: dict[str, bytes], tmp_path: Path) -> tuple[dict, str]:
    """({entry: bytes}, the expected message) of one kind of hostile archive built from a genuine one."""
    if kind == "zip-slip":
        return {**genuine, "../config.json": b"{}"}, "would land outside the run folder"
    if kind == "absolute path":
        return {**genuine, "/tmp/status.json": b"{}"}, "absolute path"
    if kind == "symlink":
        return {**genuine, symlink_entry("last.pt"): b"/etc/passwd"}, "symbolic link"
    if kind == "unknown file":
        return {**genuine, "run.sh": b"rm -rf ~"}, "'run.sh' is not a file of a run"
    if kind == "folder":
        return {f"digits/{k}": v for k, v in genuine.items()}, "folder"
    if kind == "bomb":
        return {**genuine, "metrics.jsonl": bytes(20 << 20)}, "zip bomb"
    if kind == "code in a pickle":
        buffer = io.BytesIO()
        torch.save({"arch": "cnn2", "state_dict": Exploit(tmp_path / "pwned")}, buffer)
        return {**genuine, "best.pt": buffer.getvalue()}, "not plain weights"
    if kind == "unknown architecture":
        config = genuine["config.json"].replace(b'"model": "cnn2"', b'"model": "vit_huge"')
        return {**genuine, "config.json": config}, "unknown architecture 'vit_huge'"
    if kind == "junk weights":
        return {**genuine, "best.pt": b"PK\x03\x04" + bytes(range(256)) * 4}, "best.pt: not a readable checkpoint"
    if kind == "active run":
        return {**genuine, "status.json": b'{"state": "running", "pid": 1}'}, "still running"
    if kind == "no weights":
        return {k: v for k, v in genuine.items() if k != "best.pt"}, "no weights"
    if kind == "junk map":
        return {**genuine, "projection.npz": b"PK\x03\x04" + bytes(64)}, "not a readable map"
    if kind == "pickled map":
        buffer = io.BytesIO()
        np.savez(buffer, labels=np.array([Exploit(tmp_path / "pwned")], dtype=object))
        return {**genuine, "projection.npz": buffer.getvalue()}, "not a readable map"
    raise AssertionError(kind)


KINDS = ["zip-slip", "absolute path", "symlink", "unknown file", "folder", "bomb", "code in a pickle",
         "unknown architecture", "junk weights", "active run", "no weights",
         "junk map", "pickled map"]


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_archives_are_refused_in_one_line_and_nothing_is_written(archive, store, tmp_path, kind):
    files, message = hostile(kind, members(archive), tmp_path)
    bad = write_zip(tmp_path / "bad.zip", files)
    with pytest.raises(ArchiveError, match=message) as refused:
        import_archive(bad)
    assert "\n" not in str(refused.value)
    assert_nothing_written(store)
    assert not (tmp_path / "pwned").exists()


def test_more_than_the_total_size_bound_is_refused(archive, store, monkeypatch):
    monkeypatch.setattr(archive_module, "MAX_TOTAL_BYTES", 4096)  # the genuine archive unpacks to more
    with pytest.raises(ArchiveError, match="unpacks to more than"):
        import_archive(archive)
    assert_nothing_written(store)


def test_junk_bytes_and_an_empty_file_are_not_archives(store, tmp_path):
    for content in (b"", b"PK\x03\x04 not really a zip", bytes(range(256)) * 10):
        (tmp_path / "junk.zip").write_bytes(content)
        with pytest.raises(ArchiveError, match="not a zip archive"):
            import_archive(tmp_path / "junk.zip")
    assert_nothing_written(store)


def test_an_entry_that_lies_about_its_size_is_refused_while_extracting(archive, store, tmp_path):
    """Declared sizes pass the checks; the bytes counted while extracting do not match them."""
    bad = write_zip(tmp_path / "liar.zip", {**members(archive), "metrics.jsonl": b"x" * (2 << 20)})
    data = bytearray(bad.read_bytes())
    central = -1  # rewrite the uncompressed size of metrics.jsonl in its central-directory record to 100 bytes
    offset = 0
    while (offset := data.find(b"PK\x01\x02", offset)) != -1:
        name_len = struct.unpack_from("<H", data, offset + 28)[0]
        if data[offset + 46:offset + 46 + name_len] == b"metrics.jsonl":
            struct.pack_into("<I", data, offset + 24, 100)
            central = offset
        offset += 4
    assert central != -1
    bad.write_bytes(bytes(data))
    with pytest.raises(ArchiveError):
        import_archive(bad)
    assert_nothing_written(store)


def test_a_run_still_training_is_not_archived(store, tmp_path):
    run = make_run(store, "busy")
    runs.RunWriter(run).set_status("running")
    with pytest.raises(ArchiveError, match="still running"):
        export_archive(run, tmp_path / "busy.zip")
    assert not (tmp_path / "busy.zip").exists()
