"""Produce the shipped pretrained runs in checkpoints/pretrained/ with the normal training CLI.

Each model is `python -m core.train --preset P --dataset D --name D-P` into a temporary store, then
slimmed for shipping: best.pt keeps the weights in float16 (they load as float32), last.pt (optimizer
state, only needed to resume) and the log are dropped. Everything else (config, metrics history, test
outputs, summary) is the run as trained, plus its map of the test images (projection.npz, PCA and UMAP,
made here rather than in the background: the temporary store goes away). Usage:
    python bench/make_pretrained.py                    # every model, both datasets
    python bench/make_pretrained.py --only fast mlp    # some presets
    python bench/make_pretrained.py --epochs best=12   # fewer epochs for one preset (recorded in config.json)
    python bench/make_pretrained.py --maps-only        # (re)make the maps of the shipped runs, no training
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.analysis import projection  # noqa: E402
from core.analysis.projection_job import AUTO_ENV  # noqa: E402
from core.data.datasets import load_split  # noqa: E402
from core.store.atomic import write_torch  # noqa: E402
from core.store.checkpoint import load_checkpoint, load_model  # noqa: E402

PRESETS = ["linear", "mlp", "cnn_basic", "cnn_enhanced", "cnn_small", "fast", "best"]
DATASETS = ["mnist", "fashion-mnist"]
SHIPPED_FILES = ("config.json", "metrics.jsonl", "status.json", "best.pt", "test_outputs.npz", "summary.json",
                 projection.FILE_NAME)


def add_map(run_dir: Path) -> None:
    """Store the run's PCA and UMAP map of its test images (needs the real test set; a minute or two)."""
    start = time.time()
    loaded = load_model(run_dir)
    images, labels = load_split(loaded.dataset, train=False, download=False)
    projection.save(run_dir, projection.project_run(loaded, images.numpy(), labels.numpy()))
    size = (run_dir / projection.FILE_NAME).stat().st_size
    print(f"  map of {run_dir.name}: {size / 1e3:.0f} KB ({time.time() - start:.0f}s)", flush=True)


def slim(run_dir: Path, target: Path) -> None:
    """Copy the shipped files of a finished run to `target`, with float16 weights in best.pt."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in SHIPPED_FILES:
        shutil.copy2(run_dir / name, tmp / name)
    payload = load_checkpoint(tmp / "best.pt")
    payload["state_dict"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    write_torch(tmp / "best.pt", payload)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def train(preset: str, dataset: str, extra: list[str], out_root: Path, args_threads: int) -> None:
    name = f"{dataset}-{preset}"
    with tempfile.TemporaryDirectory() as runs_dir:
        cmd = [sys.executable, "-m", "core.train", "--preset", preset, "--dataset", dataset, "--name", name,
               "--runs-dir", runs_dir, "--quiet", "--threads", str(args_threads), *extra]
        print("$", " ".join(cmd[1:]), flush=True)
        start = time.time()
        subprocess.run(cmd, cwd=REPO, check=True, env={**os.environ, AUTO_ENV: "0"})  # the map is made here
        add_map(Path(runs_dir) / name)
        slim(Path(runs_dir) / name, out_root / name)
        print(f"  -> {out_root / name} ({time.time() - start:.0f}s)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", default=PRESETS, choices=PRESETS)
    parser.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    parser.add_argument("--epochs", nargs="*", default=[], metavar="PRESET=N",
                        help="override a preset's epochs (the run's config.json records it)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (0 = all cores)")
    parser.add_argument("--out", type=Path, default=REPO / "checkpoints" / "pretrained")
    parser.add_argument("--maps-only", action="store_true", help="only (re)make the maps of the runs in --out")
    args = parser.parse_args()
    epochs = dict(item.split("=") for item in args.epochs)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    for dataset in args.datasets:
        for preset in args.only:
            if args.maps_only:
                add_map(args.out / f"{dataset}-{preset}")
                continue
            extra = ["--epochs", epochs[preset]] if preset in epochs else []
            train(preset, dataset, extra, args.out, args.threads)
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"checkpoints/pretrained: {total / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
