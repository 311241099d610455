"""The model card: a Markdown page that travels with every export and says what the model is and is not."""

from __future__ import annotations

import json
import shlex
from dataclasses import fields
from pathlib import Path

import numpy as np

from core.data.datasets import get_dataset
from core.evaluate import evaluate_run
from core.models.registry import count_parameters, create_model, get_entry
from core.store import runs
from core.store.checkpoint import CheckpointError, load_checkpoint
from core.training.config import TrainConfig

EXAMPLE_IMAGE = "image.npy"  # the card's example reads one preprocessed image saved with numpy

_PREPROCESSING = {
    "digits": "light ink on black; the ink's bounding box fitted into a 20x20 box (aspect ratio kept, anti-aliased) "
              "and placed in 28x28 so that its centre of mass sits at the centre, as MNIST was made",
    "fashion": "the object light on black, trimmed to its bounding box, the longest side scaled to 28 "
               "(aspect ratio kept) and centred in 28x28, as Fashion-MNIST was made",
}
_STYLE = {"mnist": "digits", "fashion-mnist": "fashion"}


def retrain_command(config: dict) -> str:
    """The `python -m core.train` command that trains this configuration again (flags for non-default values)."""
    values = TrainConfig.from_dict(config).to_dict()
    args = ["python", "-m", "core.train"]
    for f in fields(TrainConfig):
        default = f.default_factory() if callable(f.default_factory) else f.default
        value = values[f.name]
        if f.name not in ("dataset", "model") and value == default:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{f.name.replace('_', '-')}")
        elif isinstance(value, dict):
            args += [flag, json.dumps(value, separators=(",", ":"))]
        else:
            args += [flag, str(value)]
    return shlex.join(args)


def weakest_pairs(confusion, class_names: list[str], n: int = 3) -> list[dict]:
    """The n class pairs most often confused (both directions together), most first."""
    c = np.asarray(confusion)
    pairs = [{"a": class_names[i], "b": class_names[j], "a_as_b": int(c[i, j]), "b_as_a": int(c[j, i])}
             for i in range(len(c)) for j in range(i + 1, len(c))]
    pairs.sort(key=lambda p: p["a_as_b"] + p["b_as_a"], reverse=True)
    return [p for p in pairs[:n] if p["a_as_b"] + p["b_as_a"]]


def onnx_example(class_names: list[str], onnx_name: str) -> str:
    """Five lines that classify one preprocessed image with only numpy and onnxruntime."""
    return "\n".join([
        "import numpy as np, onnxruntime as ort",
        f"classes = {json.dumps(list(class_names))}",
        f"session = ort.InferenceSession({json.dumps(onnx_name)})",
        f"image = np.load({json.dumps(EXAMPLE_IMAGE)}).astype(np.float32).reshape(1, 1, 28, 28)"
        "  # 28x28, 0..1, light on dark",
        'print(classes[int(session.run(["probs"], {"image": image})[0].argmax())])',
    ])


def card_example(card: str) -> str:
    """The Python code block of a card (the ONNX Runtime example)."""
    return card.split("```python\n", 1)[1].split("```", 1)[0]


def _architecture(config: dict) -> tuple[str, int | None]:
    try:
        entry = get_entry(config.get("model", ""))
        return entry.description, count_parameters(create_model(entry.name, **config.get("model_kwargs", {})))
    except (ValueError, TypeError):
        return "unknown architecture", None


def model_card(run_dir: Path, onnx_name: str = "model.onnx", checks: list[dict] | None = None) -> str:
    """The Markdown card of a run; `checks` are export checks (core.inference.export.Check.to_dict) to list."""
    run_dir = Path(run_dir)
    config = runs.read_json(run_dir / "config.json") or {}
    summary = runs.read_json(run_dir / "summary.json") or {}
    spec = get_dataset(config.get("dataset", ""))
    names = list(spec.classes)
    description, params = _architecture(config)
    mean, std = normalisation(run_dir)
    result = evaluate_run(run_dir)
    tta = bool(config.get("tta_flip"))
    val = config.get("val_fraction", 0)
    lines = [
        f"# Model card: {run_dir.name}",
        "",
        f"A `{config.get('model')}` classifier of {spec.title}, trained with mnist-studio.",
        "",
        "## Data",
        f"- Dataset: {spec.title}; classes: {', '.join(names)}.",
        "- Split: the official 60,000 training images"
        + (f", of which {val:.0%} held out for validation (seed {config.get('seed', 0)})" if val else "")
        + (f", only the first {config['subset']:,} used" if config.get("subset") else "")
        + f"; scored once on the official {sum(r['support'] for r in result['per_class']):,} test images.",
        "",
        "## Architecture",
        f"- `{config.get('model')}`: {description}",
        f"- Parameters: {params:,}" if params is not None else "- Parameters: unknown",
        f"- Model arguments: `{json.dumps(config.get('model_kwargs', {}))}`",
        "",
        "## Retrain it",
        "```bash",
        retrain_command(config),
        "```",
        "",
        "## Results on the test set",
        f"- Test accuracy: {result['test_acc']:.2%}; macro F1: {result['macro_f1']:.4f}"
        + (f"; {summary['epochs']} epochs, {summary['train_seconds']:.0f} s of training on {summary.get('device')}"
           if summary.get("epochs") and summary.get("train_seconds") else ""),
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
        *(f"| {r['name']} | {r['precision']:.4f} | {r['recall']:.4f} | {r['f1']:.4f} | {r['support']} |"
          for r in result["per_class"]),
        "",
        "Most confused class pairs (test images, both directions):",
        "",
        *(f"- {p['a']} ↔ {p['b']}: {p['a_as_b']} {p['a']} taken for {p['b']}, {p['b_as_a']} the other way"
          for p in weakest_pairs(result["confusion"], names)),
        "",
        "## Input contract and preprocessing",
        "- Input `image`: float32 `[N, 1, 28, 28]`, values 0..1, light ink on a dark background; the batch "
        "size N is free.",
        "- Output `probs`: float32 `[N, 10]`, softmax probabilities in the class order above.",
        f"- Inside the exported graph: normalisation `(x - {mean}) / {std}`"
        + ("; the average with the left-right mirror image (flip test-time averaging)" if tta else "") + ".",
        f"- Prepare your own pictures as the dataset was made: {_PREPROCESSING[_STYLE[spec.name]]}. "
        "The app's Predict page (core.inference.preprocess) does exactly this and shows each stage.",
        "",
        "## Intended use and limits",
        f"- For learning and demonstrations: classifying 28x28 pictures like those of {spec.title}.",
        "- Not for decisions about people, and not for pictures unlike the training data (photos with "
        "backgrounds, several objects, other alphabets or garments): it always answers one of its ten classes, "
        "even for nonsense, and its confidence is then meaningless.",
        "- Test accuracy is measured on the official test set, which is cleaner and more uniform than real "
        "pictures; expect less on yours.",
        "",
        "## Use it with ONNX Runtime",
        f"With only `numpy` and `onnxruntime` installed, `{EXAMPLE_IMAGE}` holding one preprocessed 28x28 "
        "image:",
        "",
        "```python",
        onnx_example(names, onnx_name),
        "```",
    ]
    if checks:
        lines += ["", "## Export checks", *(f"- `{c['format']}`: max |Δp| {c['max_abs_diff']:.1e} against PyTorch, "
                                            f"same class for {c['same_class']:,} of {c['images']:,} "
                                            f"({c['source']})" for c in checks)]
    return "\n".join(lines) + "\n"


def normalisation(run_dir: Path) -> tuple[str, str]:
    """The (mean, std) stored in the run's checkpoint, formatted; '?' when unreadable."""
    for name in ("best.pt", "last.pt"):
        try:
            payload = load_checkpoint(Path(run_dir) / name)
            return f"{float(payload['mean']):.4f}", f"{float(payload['std']):.4f}"
        except (CheckpointError, KeyError, TypeError, ValueError):
            continue
    return "?", "?"
