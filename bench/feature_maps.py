"""Server-side time for "Inside the network": every layer of one input, for every shipped model.

For each pretrained run (checkpoints/pretrained, or $MNIST_STUDIO_PRETRAINED) times
core.inference.features.feature_maps on one 28x28 input (p50/p95 over `--repeats` calls after a
warm-up), next to the reference measured in the same run: the plain one-image prediction
(core.inference.predictor.model_probs) of the same model. Target: under 100 ms for every model.

    python bench/feature_maps.py [--repeats 50] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.machine import cpu_model  # noqa: E402
from core.inference.features import feature_maps  # noqa: E402
from core.inference.predictor import model_probs  # noqa: E402
from core.store.checkpoint import load_model  # noqa: E402
from core.store.paths import pretrained_root  # noqa: E402

TARGET_MS = 100.0


def percentiles_ms(call, repeats: int) -> tuple[float, float]:
    """(p50, p95) in milliseconds of `call()`, after three warm-up calls."""
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the app scores one image "
                        "on one thread)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = sorted(p for p in pretrained_root().iterdir() if (p / "best.pt").is_file())
    rng = np.random.default_rng(0)
    image = np.zeros((28, 28), np.float32)
    image[5:23, 12:16] = rng.uniform(0.5, 1, (18, 4))
    x = torch.as_tensor(image).reshape(1, 1, 28, 28)
    print(f"# Inside the network: all feature maps of one input ({cpu_model()}, {os.cpu_count()} cores, "
          f"{args.threads} thread(s), torch {torch.__version__}); target < {TARGET_MS:.0f} ms")
    print(f"{'run':28} {'arch':13} {'layers':>6} {'p50 ms':>8} {'p95 ms':>8} {'predict p50':>11} {'ratio':>6}")
    worst = 0.0
    for run in runs:
        loaded = load_model(run)
        layers = feature_maps(loaded, image)
        p50, p95 = percentiles_ms(lambda loaded=loaded: feature_maps(loaded, image), args.repeats)
        ref50, _ = percentiles_ms(lambda loaded=loaded: model_probs(loaded, x), args.repeats)
        worst = max(worst, p95)
        print(f"{run.name:28} {loaded.arch:13} {len(layers):6d} {p50:8.2f} {p95:8.2f} {ref50:11.2f} "
              f"{p50 / ref50:5.1f}x")
    print(f"# worst p95: {worst:.1f} ms ({'within' if worst < TARGET_MS else 'OVER'} the {TARGET_MS:.0f} ms target)")
    return 0 if worst < TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
