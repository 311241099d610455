"""Server-side latency of the Predict page's path, on this machine.

Prints, as p50/p95 over `--repeats` calls (after a warm-up):
  1. canvas -> probabilities: a 280x280 RGBA drawing (what st_canvas returns) -> core.preprocess
     (digits style) -> three models' probabilities and top-k (core.inference.predictor.predict_image); target < 50 ms.
     The PNG decode of the canvas picture, done by the canvas component before our code, is shown apart.
  2. one 28x28 image through the fast model alone (core.inference.predictor.predict_batch); target < 2 ms p95.
  3. the 10,000 test images through the fast model (batches of 1000); target < 2 s.

Models: the given --run directories, else the shipped pretrained MNIST runs (fast, best, mlp when
present), with randomly initialised stand-ins of the same architectures for any that are missing:
speed depends on the architecture, not the weights. Test images: the real MNIST test set when
$MNIST_STUDIO_DATA has it, else 10,000 random images (same cost).

    python bench/predict_latency.py [--run RUN_DIR ...] [--repeats 200] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.data.datasets import DATASETS, is_available, load_split  # noqa: E402
from core.inference.predictor import predict_batch, predict_image  # noqa: E402
from core.inference.preprocess import preprocess  # noqa: E402
from core.models.registry import create_model  # noqa: E402
from core.store.checkpoint import LoadedModel, load_model  # noqa: E402
from core.store.paths import pretrained_root  # noqa: E402

TARGETS_MS = {"canvas_to_probs": 50.0, "fast_single": 2.0, "fast_test_set": 2000.0}
DEFAULT_ARCHS = ("fast", "fast_wide", "mlp")  # the pretrained fast, best and mlp presets' models
PRETRAINED_NAMES = {"fast": "mnist-fast", "fast_wide": "mnist-best", "mlp": "mnist-mlp"}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def canvas_drawing(side: int = 280) -> np.ndarray:
    """A '7' as the Predict page's canvas returns it: white strokes on opaque black, RGBA uint8."""
    img = Image.new("RGBA", (side, side), (0, 0, 0, 255))
    ImageDraw.Draw(img).line([(70, 60), (210, 60), (120, 240)], fill=(255, 255, 255, 255), width=18,
                             joint="curve")
    return np.asarray(img).copy()


def stand_in(arch: str) -> LoadedModel:
    """A randomly initialised model of `arch`, in eval mode (same cost as a trained one)."""
    torch.manual_seed(0)
    return LoadedModel(create_model(arch).eval(), arch, "mnist", list(DATASETS["mnist"].classes),
                       MNIST_MEAN, MNIST_STD, False, Path("(random weights)"))


def pick_models(run_dirs: list[Path]) -> dict[str, LoadedModel]:
    """{name: model}: the given runs, else the pretrained fast/best/mlp runs or stand-ins."""
    if run_dirs:
        return {Path(d).name: load_model(Path(d)) for d in run_dirs}
    models = {}
    for arch in DEFAULT_ARCHS:
        run = pretrained_root() / PRETRAINED_NAMES[arch]
        models[run.name if run.is_dir() else f"{arch} (random weights)"] = (
            load_model(run) if (run / "best.pt").is_file() or (run / "last.pt").is_file() else stand_in(arch))
    return models


def timed(fn: Callable[[], object], repeats: int, warmup: int = 10) -> dict:
    """{"p50_ms", "p95_ms"} of `fn` over `repeats` calls after `warmup` untimed ones."""
    timer = timeit.Timer(fn)
    timer.repeat(repeat=warmup, number=1)
    p50, p95 = np.percentile(np.array(timer.repeat(repeat=repeats, number=1)) * 1000.0, [50, 95])
    return {"p50_ms": round(float(p50), 3), "p95_ms": round(float(p95), 3)}


def test_images() -> tuple[torch.Tensor, str]:
    """The MNIST test images as float [10000, 1, 28, 28] in 0..1, and where they came from."""
    if is_available("mnist"):
        images, _ = load_split("mnist", train=False, download=False)
        source = "MNIST test set"
    else:
        images = torch.randint(0, 256, (10_000, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        source = "10,000 random images (MNIST not found)"
    return (images.float() / 255.0)[:, None], source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="append", default=[], type=Path, help="a run directory (repeat)")
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per figure")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)

    models = pick_models(args.run)
    fast_name = next((n for n, m in models.items() if m.arch == "fast"), next(iter(models)))
    fast = {fast_name: models[fast_name]}
    rgba = canvas_drawing()
    buf = io.BytesIO()
    Image.fromarray(rgba).save(buf, format="PNG")
    png = buf.getvalue()
    single = torch.from_numpy(preprocess(rgba, "digits").tensor_input[None])
    images, source = test_images()

    figures = {
        "canvas_png_decode": timed(lambda: np.asarray(Image.open(io.BytesIO(png))), args.repeats),
        "canvas_to_probs": timed(lambda: predict_image(models, preprocess(rgba, "digits")), args.repeats),
        "fast_single": timed(lambda: predict_batch(fast, single), args.repeats * 5),
    }
    start = time.perf_counter()
    probs = predict_batch(fast, images)[fast_name]
    test_ms = (time.perf_counter() - start) * 1000.0
    figures["fast_test_set"] = {"total_ms": round(test_ms, 1), "images": len(probs)}

    meta = {"cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "models": {n: m.arch for n, m in models.items()}, "fast_model": fast_name, "test_images": source}
    if args.json:
        print(json.dumps({"meta": meta, "figures": figures, "targets_ms": TARGETS_MS}))
        return 0
    print(f"# Predict latency ({meta['cpu_cores']} cores, torch {meta['torch']}, {meta['torch_threads']} threads)")
    print("models: " + ", ".join(f"{n} ({a})" for n, a in meta["models"].items()))

    def line(label: str, key: str) -> None:
        fig = figures[key]
        verdict = "ok" if fig["p95_ms"] < TARGETS_MS[key] else "OVER TARGET"
        print(f"{label:<46} p50 {fig['p50_ms']:8.2f} ms   p95 {fig['p95_ms']:8.2f} ms   "
              f"(target p95 < {TARGETS_MS[key]:g} ms: {verdict})")

    line("canvas RGBA 280x280 -> 3 models' probabilities", "canvas_to_probs")
    print(f"{'  (canvas PNG -> RGBA decode, before that)':<46} p50 {figures['canvas_png_decode']['p50_ms']:8.2f} ms   "
          f"p95 {figures['canvas_png_decode']['p95_ms']:8.2f} ms")
    line(f"one image, {fast_name}", "fast_single")
    verdict = "ok" if test_ms < TARGETS_MS["fast_test_set"] else "OVER TARGET"
    print(f"{'10,000 test images, ' + fast_name:<46} total {test_ms / 1000:6.2f} s   "
          f"(target < {TARGETS_MS['fast_test_set'] / 1000:g} s: {verdict}; {source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
