"""Run archives: a run directory as one .zip to take away, and a safe import of one made elsewhere.

An archive holds the run store's files flat (config.json, status.json, best.pt, ...). Import treats it as
untrusted: every entry is checked before a byte is extracted (a known file name, no folders, links or
absolute paths, bounded sizes and compression ratio), bytes are counted while extracting, the result is
validated (config, status, weights loaded with weights_only=True and fitted to a known architecture, test
outputs without pickles) in a hidden temporary folder beside the runs root, and only then renamed into
place under a fresh name. Any problem raises ArchiveError with one line; nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np

from core.analysis import projection
from core.data.datasets import DATASETS
from core.models.registry import model_names
from core.store import atomic, runs
from core.store.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from core.store.paths import runs_root

RUN_FILES = ("config.json", "status.json", "summary.json", "metrics.jsonl", "best.pt", "last.pt",
             "test_outputs.npz", projection.FILE_NAME)
MAX_ARCHIVE_BYTES = 512 << 20  # the .zip itself
MAX_TOTAL_BYTES = 512 << 20  # all entries, uncompressed (ResNet-18's best.pt and last.pt are ~45 and ~90 MB)
MAX_RATIO = 100  # uncompressed / compressed size of one entry (zip bombs reach thousands)
RATIO_FLOOR = 1 << 20  # entries smaller than this are not held to MAX_RATIO
CHUNK = 1 << 20


class ArchiveError(ValueError):
    """An archive that cannot be exported or imported; the message is one line naming the problem."""


# ---- export ----------------------------------------------------------------------------------------------


def export_archive(run_dir: Path, out: Path) -> Path:
    """Write the run's store files into the .zip `out` (atomically); refuses a run that is still training."""
    run_dir = Path(run_dir)
    info = runs.read_run(run_dir)
    if info.config is None:
        raise ArchiveError(f"{run_dir.name}: not a run directory (config.json is missing or unreadable)")
    if info.state in runs.ACTIVE_STATES:
        raise ArchiveError(f"{run_dir.name}: still {info.state}; archive it when it has finished")
    if not info.has_weights:
        raise ArchiveError(f"{run_dir.name}: has no weights (best.pt or last.pt) to archive")
    out = Path(out)
    with atomic.replacing(out) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in RUN_FILES:
            if (run_dir / name).is_file():
                zf.write(run_dir / name, name)
        if not (run_dir / "status.json").is_file():  # shipped pretrained runs may lack one
            zf.writestr("status.json", '{"state": "completed"}\n')
    return out


# ---- import ----------------------------------------------------------------------------------------------


def _is_symlink(entry: zipfile.ZipInfo) -> bool:
    return entry.create_system == 3 and stat.S_ISLNK(entry.external_attr >> 16)


def check_entries(entries: list[zipfile.ZipInfo]) -> None:
    """Refuse (ArchiveError) any entry that is not a plain, bounded file of the run store."""
    seen, total = set(), 0
    for entry in entries:
        name = entry.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise ArchiveError(f"entry {name!r} has an absolute path; refused")
        if ".." in parts:
            raise ArchiveError(f"entry {name!r} would land outside the run folder; refused")
        if _is_symlink(entry):
            raise ArchiveError(f"entry {name!r} is a symbolic link; refused")
        if entry.is_dir() or len(parts) != 1:
            raise ArchiveError(f"entry {name!r} is a folder or lies in one; a run archive holds files only")
        if name not in RUN_FILES:
            raise ArchiveError(f"entry {name!r} is not a file of a run ({', '.join(RUN_FILES)}); refused")
        if name in seen:
            raise ArchiveError(f"entry {name!r} appears twice; refused")
        if entry.flag_bits & 0x1:
            raise ArchiveError(f"entry {name!r} is encrypted; refused")
        seen.add(name)
        if entry.file_size > RATIO_FLOOR and entry.file_size > MAX_RATIO * max(1, entry.compress_size):
            raise ArchiveError(f"entry {name!r} expands {entry.file_size / max(1, entry.compress_size):.0f} times "
                               f"(limit {MAX_RATIO}): a zip bomb? refused")
        total += entry.file_size
        if total > MAX_TOTAL_BYTES:
            raise ArchiveError(f"the archive unpacks to more than {MAX_TOTAL_BYTES >> 20} MB; refused")
    for needed in ("config.json", "status.json"):
        if needed not in seen:
            raise ArchiveError(f"the archive has no {needed}; it is not a run archive")
    if not seen & {"best.pt", "last.pt"}:
        raise ArchiveError("the archive has no weights (best.pt or last.pt)")


def _extract(zf: zipfile.ZipFile, entries: list[zipfile.ZipInfo], folder: Path) -> None:
    """Copy checked entries into `folder`, counting bytes: more than declared (or in all) is refused."""
    total = 0
    for entry in entries:
        written = 0
        with zf.open(entry) as src, open(folder / entry.filename, "xb") as dst:
            while chunk := src.read(CHUNK):
                written += len(chunk)
                total += len(chunk)
                if written > entry.file_size or total > MAX_TOTAL_BYTES:
                    raise ArchiveError(f"entry {entry.filename!r} unpacks to more than it declares; refused")
                dst.write(chunk)


def validate_run_folder(folder: Path) -> tuple[str, str]:
    """(dataset, model) of an extracted run, or ArchiveError naming what is wrong with it."""
    config = runs.read_json(folder / "config.json")
    if config is None:
        raise ArchiveError("config.json is not a JSON object")
    dataset, model = config.get("dataset"), config.get("model")
    if dataset not in DATASETS:
        raise ArchiveError(f"config.json names an unknown dataset {dataset!r}")
    if model not in model_names():
        raise ArchiveError(f"unknown architecture {model!r}; this mnist-studio knows: {', '.join(model_names())}")
    status = runs.read_json(folder / "status.json")
    if status is None or status.get("state") not in runs.STATES:
        raise ArchiveError("status.json is missing a known state")
    if status["state"] in runs.ACTIVE_STATES:
        raise ArchiveError(f"the archived run was still {status['state']}; archive it when it has finished")
    if (folder / "summary.json").exists() and runs.read_json(folder / "summary.json") is None:
        raise ArchiveError("summary.json is not a JSON object")
    for name in ("best.pt", "last.pt"):
        if (folder / name).exists():
            _check_weights(folder / name, dataset, model)
    if (folder / "test_outputs.npz").exists():
        _check_test_outputs(folder / "test_outputs.npz", len(DATASETS[dataset].classes))
    if (folder / projection.FILE_NAME).exists():
        _check_projection(folder)
    return dataset, model


def _check_weights(path: Path, dataset: str, model: str) -> None:
    try:
        payload = load_checkpoint(path)  # weights_only=True: a pickle that would run code is refused
        if payload["arch"] != model or payload["dataset"] != dataset:
            raise ArchiveError(f"{path.name} holds a {payload['arch']} for {payload['dataset']}, but config.json "
                               f"says {model} for {dataset}")
        model_from_checkpoint(payload, path.name)
    except CheckpointError as err:
        raise ArchiveError(" ".join(str(err).split())) from err


def _check_test_outputs(path: Path, num_classes: int) -> None:
    try:
        with np.load(path, allow_pickle=False) as data:
            probs, labels = data["probs"], data["labels"]
    except Exception as err:  # not a zip, a pickle, missing keys: all the same to the user
        raise ArchiveError(f"test_outputs.npz is not readable test outputs ({type(err).__name__})") from err
    if probs.ndim != 2 or probs.shape[1] != num_classes or labels.shape != probs.shape[:1]:
        raise ArchiveError(f"test_outputs.npz has probabilities of shape {probs.shape} and labels of shape "
                           f"{labels.shape}")


def _check_projection(folder: Path) -> None:
    found = projection.load(folder)  # allow_pickle=False; None when unreadable or incomplete
    n = None if found is None else len(found.labels)
    if found is None or not found.coords or any(c.shape != (n, 2) for c in found.coords.values()) \
            or found.preds.shape != (n,):
        raise ArchiveError(f"{projection.FILE_NAME} is not a readable map of the test images")


def _name_hint(hint: str, dataset: str, model: str) -> str:
    stem = Path(str(hint or "")).name.removesuffix(".zip")
    try:
        return runs.validate_run_name(stem)
    except runs.RunNameError:
        return runs.validate_run_name(f"imported-{dataset}-{model}")


def _place(folder: Path, root: Path, base: str) -> Path:
    """Rename `folder` to root/base (or base-2, base-3, ... when taken); the rename is atomic."""
    for n in range(1, 1000):
        name = base if n == 1 else f"{base[:110]}-{n}"
        target = runs.run_dir_for(name, root)
        if target.exists():
            continue
        try:
            os.rename(folder, target)
            return target
        except OSError:  # taken between the check and the rename
            continue
    raise ArchiveError(f"no free run name for {base!r}")


def import_archive(source: Path | BinaryIO, name_hint: str = "", root: Path | None = None) -> Path:
    """Import a run archive (a path or a binary file object) into the user runs root; the new run directory.

    The run is named after `name_hint` (default: the archive's file name), suffixed when the name is taken.
    """
    root = Path(root or runs_root())
    if isinstance(source, (str, Path)):
        name_hint = name_hint or Path(source).name
        try:
            size = Path(source).stat().st_size
        except OSError as err:
            raise ArchiveError(f"cannot read {source}: {err.strerror}") from err
    else:
        size = source.seek(0, os.SEEK_END)
        source.seek(0)
    if size > MAX_ARCHIVE_BYTES:
        raise ArchiveError(f"the archive is {size >> 20} MB; the limit is {MAX_ARCHIVE_BYTES >> 20} MB")
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ArchiveError(f"not a zip archive ({err})") from err
    with zf:
        entries = zf.infolist()
        check_entries(entries)
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".import-{root.name}-", dir=root.parent))
        try:
            _extract(zf, entries, staging)
            dataset, model = validate_run_folder(staging)
            root.mkdir(parents=True, exist_ok=True)
            return _place(staging, root, _name_hint(name_hint, dataset, model))
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, OSError) as err:
            raise ArchiveError(f"the archive is damaged ({type(err).__name__}: {err})") from err
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
