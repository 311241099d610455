"""Take a model with you, or bring one here:

    python -m core.share export RUN_DIR --format onnx|pt2|zip [--out PATH]   # last line: the file
    python -m core.share import ARCHIVE.zip                                  # last line: the new run folder

`onnx` and `pt2` are the model behind one input contract (core.inference.export), written only after
their check passed; `zip` is the run directory as an archive another mnist-studio can import. A model
card (Markdown, core.analysis.model_card) is written beside every export as PATH with `.md`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.analysis.model_card import model_card
from core.data.datasets import DataUnavailableError
from core.inference.export import Check, ExportError, export_model
from core.store import atomic, runs
from core.store.archive import ArchiveError, export_archive, import_archive
from core.store.checkpoint import CheckpointError, load_model

FORMATS = ("onnx", "pt2", "zip")
SHARE_ERRORS = (ArchiveError, CheckpointError, ExportError, DataUnavailableError, FileNotFoundError, ValueError)


@dataclass
class Exported:
    """What an export wrote: the file, its check (None for an archive) and the model card (None if unscored)."""

    path: Path
    check: Check | None
    card: str | None
    card_problem: str | None = None


def file_name(run_dir: Path, fmt: str) -> str:
    """The default file name of a run's export, e.g. fashion-mnist-fast.onnx."""
    return f"{Path(run_dir).name}.{fmt}"


def build_card(run_dir: Path, onnx_name: str, checks: list[dict]) -> tuple[str | None, str | None]:
    """(card, None), or (None, why not) when the run cannot be scored here."""
    try:
        return model_card(run_dir, onnx_name, checks), None
    except (DataUnavailableError, CheckpointError, OSError, KeyError, ValueError) as err:
        return None, f"no model card: {err}"


def export_run(run_dir: Path, fmt: str, out: Path) -> Exported:
    """Write the run as `fmt` to `out` (checked first for models); SHARE_ERRORS with one line on failure."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    run_dir, out = Path(run_dir), Path(out)
    if fmt == "zip":
        export_archive(run_dir, out)
        check = None
    else:
        check = export_model(load_model(run_dir), fmt, out)
    card, problem = build_card(run_dir, out.name if fmt == "onnx" else file_name(run_dir, "onnx"),
                               [check.to_dict()] if check else [])
    return Exported(out, check, card, problem)


def export_bytes(run_dir: Path, fmt: str) -> tuple[bytes, Exported]:
    """(the file's bytes, what was exported) for a download: built in a temporary folder that is then removed."""
    with tempfile.TemporaryDirectory(prefix="mnist-studio-export-") as tmp:
        result = export_run(run_dir, fmt, Path(tmp) / file_name(run_dir, fmt))
        return result.path.read_bytes(), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.share", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    exp = sub.add_parser("export", help="write a run as an ONNX file, a torch.export program or a run archive")
    exp.add_argument("run", help="run directory, or the name of a run in checkpoints/runs or pretrained")
    exp.add_argument("--format", choices=FORMATS, required=True)
    exp.add_argument("--out", type=Path, help="file to write (default: ./RUN_NAME.FORMAT)")
    imp = sub.add_parser("import", help="make a run here from a run archive (.zip)")
    imp.add_argument("archive", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "import":
            print(import_archive(args.archive))
            return 0
        run_dir = runs.resolve_run_path(args.run)
        out = args.out or Path(file_name(run_dir, args.format))
        result = export_run(run_dir, args.format, out)
    except SHARE_ERRORS as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    if result.check:
        print(result.check.summary())
    if result.card:
        card_path = out.with_suffix(".md")
        atomic.write_bytes(card_path, result.card.encode())
        print(f"model card: {card_path}")
    else:
        print(result.card_problem)
    print(result.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
