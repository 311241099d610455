"""The README's table of shipped pretrained models: parameters, test accuracy, macro F1, training time, latency,
probe stability.

Accuracy and training time come from each run's summary.json (as trained by bench/make_pretrained.py);
latency is measured here, now: one image, the app's inference path, p50/p95 over 100 calls. Probe stability is
measured here too: the share of the 10,000 test images whose predicted class each of the robustness probe's ten
changes (core.inference.probe: shifts, rotations, zooms, thinner and thicker strokes) leaves the same, as the
mean over the ten and the worst one. Usage:
    python bench/model_table.py                      # every shipped run
    python bench/model_table.py --runs mnist-best    # some runs
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.machine import cpu_model  # noqa: E402
from core.data.datasets import load_split  # noqa: E402
from core.inference.latency import measure_latency  # noqa: E402
from core.inference.probe import stability  # noqa: E402
from core.store import runs  # noqa: E402
from core.store.checkpoint import load_model  # noqa: E402
from core.store.paths import pretrained_root  # noqa: E402


def probe_figure(loaded) -> str:
    """"mean kept · worst kept (its change)" of the probe over the run's test set."""
    images, labels = load_split(loaded.dataset, train=False)
    result = stability(loaded.model, images, labels, loaded.mean, loaded.std, tta_flip=loaded.tta_flip)
    name, worst = result.worst
    return f"{result.mean_kept:.2%} · {worst:.2%} ({name})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", metavar="NAME", help="only these shipped runs (default: all)")
    args = parser.parse_args()
    print(f"# Pretrained models ({cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f})\n")
    print("| run | model | parameters | test accuracy | macro F1 | epochs | training time | latency p50 / p95 "
          "| probe stability: mean · worst |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for info in sorted(runs.scan(pretrained_root(), "pretrained"), key=lambda r: (r.dataset or "", r.name)):
        if args.runs and info.name not in args.runs:
            continue
        summary = info.summary or {}
        loaded = load_model(info.path)
        latency = measure_latency(loaded, repeats=100, warmup=10)
        config = info.config or {}
        print(f"| {info.name} | {info.model} | {summary.get('params', 0):,} | {summary.get('test_acc', 0):.2%} | "
              f"{summary.get('macro_f1', 0):.4f} | {summary.get('epochs')} | {summary.get('train_seconds', 0):.0f} s"
              f"{' (1 thread)' if config.get('threads') == 1 else ''} | "
              f"{latency['p50_ms']:.2f} / {latency['p95_ms']:.2f} ms | {probe_figure(loaded)} |", flush=True)
    size = sum(f.stat().st_size for f in pretrained_root().rglob("*") if f.is_file())
    print(f"\nTotal size of checkpoints/pretrained: {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
