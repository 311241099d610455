"""Training speed, side by side in one run: the tutorial pipeline against our presets.

The reference is the pipeline most MNIST/Fashion-MNIST tutorials use: the `cnn_basic` network fed by
torchvision's per-sample `ToTensor()` + `Normalize((0.5,), (0.5,))` through a `DataLoader` (batch 64,
shuffle), Adam 1e-3, plain epochs. Ours are the exact CLI commands `python -m core.train --preset P
--dataset D` (with --monitor-test, which scores the test set after each epoch without using it for
anything and outside the timed training).

Times are training seconds (evaluation excluded for both sides); the full wall-clock of our commands,
start-up and evaluation included, is printed too. Usage:
    python bench/train_speed.py                      # fast preset vs reference, both datasets
    python bench/train_speed.py --presets fast best  # add the long "best" preset (about 20 min each)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision import transforms

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from core.data.datasets import data_root, get_dataset  # noqa: E402
from core.models.registry import create_model  # noqa: E402
from core.store import events  # noqa: E402

THRESHOLDS = {"fashion-mnist": (0.88, 0.90, 0.91, 0.92, 0.927, 0.94, 0.945), "mnist": (0.98, 0.985, 0.99, 0.995, 0.996)}
REFERENCE_EPOCHS = {"fashion-mnist": 5, "mnist": 4}


def reference_curve(dataset: str, epochs: int) -> list[tuple[float, float]]:
    """(cumulative training seconds, test accuracy) after each epoch of the tutorial pipeline."""
    torch.manual_seed(0)
    spec = get_dataset(dataset)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    train = spec.loader(str(data_root()), train=True, download=True, transform=tf)
    test = spec.loader(str(data_root()), train=False, download=True, transform=tf)
    train_loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test, batch_size=1000)
    model = create_model("cnn_basic")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    curve, trained = [], 0.0
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        trained += time.perf_counter() - start
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += (model(x).argmax(1) == y).sum().item()
        curve.append((trained, correct / len(test)))
        print(f"  reference epoch {epoch + 1}: {trained:6.1f}s trained, test {correct / len(test):.4f}", flush=True)
    return curve


def preset_curve(dataset: str, preset: str, extra: list[str]) -> tuple[list[tuple[float, float]], float, dict]:
    """(curve, command wall seconds, summary) of `python -m core.train --preset P --dataset D --monitor-test`."""
    with tempfile.TemporaryDirectory() as runs_dir:
        cmd = [sys.executable, "-m", "core.train", "--preset", preset, "--dataset", dataset, "--monitor-test",
               "--quiet", "--runs-dir", runs_dir, *extra]
        start = time.perf_counter()
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
        run_dir = Path(out.stdout.strip().splitlines()[-1])
        epochs = events.epoch_events(events.read_events(run_dir)[0])
        curve = [(e["elapsed"], e["test_acc"]) for e in epochs.values()]
        summary = json.loads((run_dir / "summary.json").read_text())
    for i, (t, acc) in enumerate(curve):
        print(f"  {preset} epoch {i + 1}: {t:6.1f}s trained, test {acc:.4f}", flush=True)
    print(f"  {preset}: final test {summary['test_acc']:.4f} (best-by-validation weights), "
          f"command wall {wall:.1f}s", flush=True)
    return curve, wall, summary


def time_to(curve: list[tuple[float, float]], threshold: float) -> float | None:
    """Training seconds at the first epoch whose test accuracy reaches `threshold`."""
    return next((t for t, acc in curve if acc >= threshold), None)


def accuracy_at(curve: list[tuple[float, float]], seconds: float) -> float | None:
    """Test accuracy of the last epoch finished within `seconds` of training."""
    done = [acc for t, acc in curve if t <= seconds + 1e-9]
    return done[-1] if done else None


def fmt_time(t: float | None) -> str:
    return f"{t:.1f}s" if t is not None else "not reached"


def report(dataset: str, reference: list, results: dict) -> list[str]:
    """Markdown lines: time to each accuracy, accuracy at equal time, ratios."""
    names = ["reference"] + list(results)
    lines = [f"\n### {dataset}\n", "| test accuracy | " + " | ".join(names) + " | speed-up (reference / " +
             "preset) |", "|---" * (len(names) + 2) + "|"]
    curves = {"reference": reference, **{k: v[0] for k, v in results.items()}}
    for threshold in THRESHOLDS[dataset]:
        times = [time_to(curves[n], threshold) for n in names]
        ref = times[0]
        ratios = []
        for n, t in zip(names[1:], times[1:], strict=True):
            if t is None:
                ratios.append(f"{n}: -")
            elif ref is None:
                ratios.append(f"{n}: > {reference[-1][0] / t:.1f}x")
            else:
                ratios.append(f"{n}: {ref / t:.1f}x")
        cells = " | ".join(fmt_time(t) for t in times)
        lines.append(f"| {threshold:.1%} | {cells} | {', '.join(ratios)} |")
    for n in names[1:]:
        t_ours, acc_ours = curves[n][-1]
        ref_acc = accuracy_at(reference, t_ours)
        ref_text = (f"{ref_acc:.2%}" if ref_acc is not None
                    else f"no epoch finished yet (its first took {reference[0][0]:.0f}s)")
        lines.append(f"\nAt {n}'s {t_ours:.0f}s of training: {n} {acc_ours:.2%}, reference {ref_text} "
                     f"(reference's own {len(reference)} epochs: {reference[-1][1]:.2%} "
                     f"after {reference[-1][0]:.0f}s).")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["fashion-mnist", "mnist"])
    parser.add_argument("--presets", nargs="+", default=["fast"])
    parser.add_argument("--reference-epochs", type=int, help="override the reference's epochs")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train_speed.json")
    args = parser.parse_args()
    print(f"# Training speed ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, torchvision {torchvision.__version__}, threads {torch.get_num_threads()})")
    lines, record = [], {}
    for dataset in args.datasets:
        print(f"\n{dataset}: reference pipeline", flush=True)
        reference = reference_curve(dataset, args.reference_epochs or REFERENCE_EPOCHS[dataset])
        results = {}
        for preset in args.presets:
            print(f"{dataset}: preset {preset}", flush=True)
            results[preset] = preset_curve(dataset, preset, [])
        lines += report(dataset, reference, results)
        record[dataset] = {"reference": reference, **{k: {"curve": v[0], "wall": v[1], "summary": v[2]}
                                                      for k, v in results.items()}}
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
