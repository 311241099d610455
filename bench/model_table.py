"""The README's table of shipped pretrained models: parameters, test accuracy, macro F1, training time, latency.

Accuracy and training time come from each run's summary.json (as trained by bench/make_pretrained.py);
latency is measured here, now: one image, the app's inference path, p50/p95 over 100 calls.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.inference.latency import measure_latency  # noqa: E402
from core.store import runs  # noqa: E402
from core.store.checkpoint import load_model  # noqa: E402
from core.store.paths import pretrained_root  # noqa: E402


def main() -> int:
    print(f"# Pretrained models ({os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads)\n")
    print("| run | model | parameters | test accuracy | macro F1 | epochs | training time | latency p50 / p95 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for info in sorted(runs.scan(pretrained_root(), "pretrained"), key=lambda r: (r.dataset or "", r.name)):
        summary = info.summary or {}
        latency = measure_latency(load_model(info.path), repeats=100, warmup=10)
        config = info.config or {}
        print(f"| {info.name} | {info.model} | {summary.get('params', 0):,} | {summary.get('test_acc', 0):.2%} | "
              f"{summary.get('macro_f1', 0):.4f} | {summary.get('epochs')} | {summary.get('train_seconds', 0):.0f} s"
              f"{' (1 thread)' if config.get('threads') == 1 else ''} | "
              f"{latency['p50_ms']:.2f} / {latency['p95_ms']:.2f} ms |")
    size = sum(f.stat().st_size for f in pretrained_root().rglob("*") if f.is_file())
    print(f"\nTotal size of checkpoints/pretrained: {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
