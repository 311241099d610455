"""The prediction command line:

    python -m core.predict --run RUN_DIR [--run RUN_DIR2 ...] [--top-k 3] \
        [--dataset-style auto|digits|fashion] IMAGE...

prints one JSON object per image per run: file, run, label, class_name, confidence, top_k (and
warnings), or file, run and error. The exit status is 0 when every image was predicted, 1 when some
could not be, 2 when a run cannot be loaded. The logic lives in core.inference.predictor.
"""

from __future__ import annotations

import argparse
import json
import sys

from core.inference.predictor import cli_records
from core.inference.preprocess import STYLES
from core.store.checkpoint import CheckpointError, load_model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m core.predict",
        description="Predict the class of image files with trained runs. Prints one JSON object per image "
                    "per run: file, run, label, class_name, confidence, top_k, warnings; or file, run, error.")
    parser.add_argument("--run", action="append", required=True, metavar="RUN_DIR",
                        help="a run directory (or the name of a user/pretrained run); repeat for several")
    parser.add_argument("--top-k", type=int, default=3, help="how many classes to list (1-10)")
    parser.add_argument("--dataset-style", choices=("auto", *STYLES), default="auto",
                        help="preprocessing: auto = the run's dataset (MNIST -> digits, Fashion-MNIST -> fashion)")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="PNG, JPEG, WebP, BMP or GIF files")
    return parser


def main(argv: list[str] | None = None) -> int:
    from core.store.runs import resolve_run_path

    args = build_parser().parse_args(argv)
    if not 1 <= args.top_k <= 10:
        print("error: --top-k must be between 1 and 10", file=sys.stderr)
        return 2
    loaded_runs = []
    for text in args.run:
        try:
            run_dir = resolve_run_path(text)
            name = run_dir.name if run_dir.name not in {n for n, _ in loaded_runs} else str(run_dir)
            loaded_runs.append((name, load_model(run_dir)))
        except (FileNotFoundError, CheckpointError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    records = cli_records(loaded_runs, args.images, args.dataset_style, args.top_k)
    for record in records:
        print(json.dumps(record, ensure_ascii=False), flush=True)
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
