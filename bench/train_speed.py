"""Training speed in R: our presets' complete runs against the tutorial pipeline, measured in one run.

R is the reference's seconds per epoch, measured just before the presets on the same dataset: the pipeline
most MNIST/Fashion-MNIST tutorials use (the `cnn_basic` network fed by torchvision's per-sample `ToTensor()` +
`Normalize((0.5,), (0.5,))` through a `DataLoader`, batch 64, shuffle, Adam 1e-3). Seconds do not carry from
machine to machine, ratios to R do (bench/speed_ratios.py). Ours are the exact CLI commands
`python -m core.train --preset P --dataset D --seed S --monitor-test` (--monitor-test scores the test set
after each epoch, outside the timed training and never for selection; the complete run's accuracy is the one
it reports, from the weights its validation picked). Usage:
    python bench/train_speed.py                               # fast, both datasets, seed 0
    python bench/train_speed.py --presets fast --seeds 0 1    # the issue's targets are means of 2 seeds
    python bench/train_speed.py --presets fast best           # add the long record preset
"""

from __future__ import annotations

import argparse
import json
import os
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

from bench.machine import cpu_flags, cpu_model  # noqa: E402
from bench.speed_ratios import seconds_per_epoch, target_rows, threshold_table  # noqa: E402
from core.data.datasets import data_root, get_dataset  # noqa: E402
from core.inference.engine import resolve_device  # noqa: E402
from core.models.registry import create_model  # noqa: E402
from core.store import events  # noqa: E402
from core.training.config import DEVICES, PRECISIONS  # noqa: E402
from core.training.presets import get_preset  # noqa: E402


def reference_curve(dataset: str, epochs: int, device: torch.device) -> list[tuple[float, float]]:
    """(cumulative training seconds, test accuracy) after each epoch of the tutorial pipeline on `device`
    (on a GPU as tutorials do it: the model there, each batch copied to it)."""
    torch.manual_seed(0)
    spec = get_dataset(dataset)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    train = spec.loader(str(data_root()), train=True, download=True, transform=tf)
    test = spec.loader(str(data_root()), train=False, download=True, transform=tf)
    train_loader = torch.utils.data.DataLoader(train, batch_size=64, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test, batch_size=1000)
    model = create_model("cnn_basic").to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    curve, trained = [], 0.0
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        synchronize(device)
        trained += time.perf_counter() - start
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
        curve.append((trained, correct / len(test)))
        print(f"  reference epoch {epoch + 1}: {trained:6.1f}s trained, test {correct / len(test):.4f}", flush=True)
    return curve


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that a timer read after it counts that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def preset_run(dataset: str, preset: str, seed: int, threads: int, device: str, precision: str) -> dict:
    """One complete run of `python -m core.train --preset P --dataset D --seed S --monitor-test`."""
    with tempfile.TemporaryDirectory() as runs_dir:
        cmd = [sys.executable, "-m", "core.train", "--preset", preset, "--dataset", dataset, "--seed", str(seed),
               "--threads", str(threads), "--monitor-test", "--quiet", "--runs-dir", runs_dir,
               "--device", device, "--precision", precision]
        start = time.perf_counter()
        # no map of the test images after training: that background job would share the cores with the next run
        env = {**os.environ, "MNIST_STUDIO_AUTO_PROJECTION": "0"}
        out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
        run_dir = Path(out.stdout.strip().splitlines()[-1])
        epochs = events.epoch_events(events.read_events(run_dir)[0])
        summary = json.loads((run_dir / "summary.json").read_text())
    curve = [(e["elapsed"], e["test_acc"]) for e in epochs.values()]
    for i, (t, acc) in enumerate(curve):
        print(f"  {preset} seed {seed} epoch {i + 1}: {t:6.1f}s trained, test {acc:.4f}", flush=True)
    print(f"  {preset} seed {seed}: complete run {summary['test_acc']:.4f} (validation-selected, epoch "
          f"{summary['best_epoch']}), {summary['train_seconds']:.1f}s trained, command wall {wall:.1f}s", flush=True)
    return {"curve": curve, "final": summary["test_acc"], "seconds": summary["train_seconds"], "wall": wall}


def machine_line(threads: int, device: torch.device, precision: str) -> str:
    flags = ", ".join(cpu_flags()) or "none of the listed"
    gpu = f"; training on {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (f"{cpu_model()}, {os.cpu_count()} cores (flags: {flags}){gpu}, precision {precision}, torch "
            f"{torch.__version__} with {threads} threads, torchvision {torchvision.__version__}")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["fashion-mnist", "mnist"])
    parser.add_argument("--presets", nargs="+", default=["fast"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="one complete run per seed; means")
    parser.add_argument("--reference-epochs", type=int, default=2, help="epochs of the reference that R averages")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads, both sides")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="both sides train there (auto: CUDA, "
                        "then MPS, then the CPU)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="the presets' precision")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "train_speed.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    machine = machine_line(args.threads, device, args.precision)
    print(f"# Training speed in R ({machine}); load average {load_average()}", flush=True)
    r_by_dataset, results, record = {}, {}, {}
    for dataset in args.datasets:
        print(f"\n{dataset}: reference pipeline ({args.reference_epochs} epochs)", flush=True)
        reference = reference_curve(dataset, args.reference_epochs, device)
        r_by_dataset[dataset] = seconds_per_epoch(reference)
        print(f"  R = {r_by_dataset[dataset]:.1f} s", flush=True)
        results[dataset], configs = {}, {}
        for preset in args.presets:
            config = json.dumps(get_preset(preset).config(dataset).to_dict(), sort_keys=True)
            if config in configs:  # e.g. fast_mnist on clothes is fast: one set of runs serves both rows
                print(f"{dataset}: preset {preset} is the same run as {configs[config]}; its results are shared")
                results[dataset][preset] = results[dataset][configs[config]]
                continue
            configs[config] = preset
            print(f"{dataset}: preset {preset}, seeds {' '.join(map(str, args.seeds))}", flush=True)
            results[dataset][preset] = [preset_run(dataset, preset, seed, args.threads, device.type, args.precision)
                                     for seed in args.seeds]
        record[dataset] = {"reference": reference, "R": r_by_dataset[dataset], **results[dataset]}
    print(f"\n# Training speed in R: {machine}; load average at the end {load_average()}")
    print("R (the tutorial reference's seconds per epoch, this run): "
          + ", ".join(f"{d} {r:.1f} s" for d, r in r_by_dataset.items()))
    print(f"Times are training seconds, mean of seeds {' '.join(map(str, args.seeds))}, in R (seconds on this "
          "machine in brackets).\n")
    for dataset in args.datasets:
        print("\n".join(threshold_table(dataset, r_by_dataset[dataset], results[dataset])) + "\n")
    print("\n".join(target_rows(r_by_dataset, results)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "seeds": args.seeds, **record}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
