"""Predict with one or more trained models on users' images: probabilities, top-k, disagreement,
a plain-words warning for unsure or unusual inputs, a robustness probe, and results tables for many
files. Shared by the Predict page and the command line:

    python -m core.predict --run RUN_DIR [--run RUN_DIR2 ...] [--top-k 3] \
        [--dataset-style auto|digits|fashion] IMAGE...

prints one JSON object per image per run: file, run, label, class_name, confidence, top_k (and
warnings), or file, run and error. The exit status is 0 when every image was predicted, 1 when some
could not be, 2 when a run cannot be loaded.

`models` arguments are mappings {display name: LoadedModel} (core.store.checkpoint.load_model); models are
only read, never changed, so a cached model can be shared by every session of the app.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from core import hosting
from core.inference.engine import predict_probs
from core.inference.images import MAX_UPLOAD_BYTES, decode_many
from core.inference.preprocess import REFERENCE_STATS, STYLE_BY_DATASET, Preprocessed, preprocess
from core.inference.probe import variants
from core.store.checkpoint import LoadedModel

LOW_CONFIDENCE = 0.6  # a top probability under this is called unsure
DEFAULT_MODELS = 3  # how many models the Predict page picks by default
SMALL_BATCH = 64  # up to this many images are scored on one thread (see threads_for)

# The 0.5th to 99.5th percentile of each statistic over the real test sets (core.inference.preprocess.ink_stats
# of the 28x28 images, first 3,000 of each): outside it an input looks unlike the training data.
TYPICAL_RANGES = {
    "digits": {"ink_fraction": (0.042, 0.260), "mean_intensity": (0.040, 0.249)},
    "fashion": {"ink_fraction": (0.011, 0.686), "mean_intensity": (0.059, 0.617)},
}
_OBJECT = {"digits": "digit", "fashion": "garment"}
_TRAINING_SET = {"digits": "MNIST digits", "fashion": "Fashion-MNIST pictures"}

Models = Mapping[str, LoadedModel]


# --- inference -------------------------------------------------------------------------------


def model_probs(loaded: LoadedModel, inputs: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """Softmax probabilities float32 [N, 10] of one model for float inputs [N, 1, 28, 28] in 0..1.

    Normalises with the model's own mean/std and averages with the mirror image when the run was
    trained with test-time flip averaging. Up to SMALL_BATCH images run in float32 on one thread;
    larger batches use all threads and bf16 autocast where it is native (CUDA, CPUs with
    AVX512-BF16/AMX: the fast net scores the 10,000 test images in 2.1 s of CPU time instead of
    3.8 s here), as training's "auto" precision does. The model must be in eval mode (as load_model
    returns it); it is only read, so a cached model may be shared between threads.
    """
    precision = "auto" if len(inputs) > SMALL_BATCH else "fp32"
    with torch.inference_mode(), threads_for(len(inputs)):
        probs = predict_probs(loaded.model, inputs, loaded.mean, loaded.std, batch_size=batch_size,
                              tta_flip=loaded.tta_flip, precision=precision)
    return probs.numpy()


@contextmanager
def threads_for(n_images: int):
    """One intra-op thread for a few images, the configured number for large batches.

    A single image is too little work to share: on this 2-core machine with the other core busy,
    the fast model took 0.65 ms (p50) on one thread and 9.5 ms on two, which wait for each other
    (Grad-CAM of the best MNIST model under load: 10 ms on one thread, 110 ms on two).
    """
    before = torch.get_num_threads()
    if n_images > SMALL_BATCH or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def predict_batch(models: Models, inputs: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
    """{model name: probabilities float32 [N, 10]} for inputs [N, 1, 28, 28] (or [N, 28, 28]) in 0..1."""
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32) if not torch.is_tensor(inputs) else inputs)
    x = x.float().reshape(-1, 1, 28, 28)
    return {name: model_probs(loaded, x) for name, loaded in models.items()}


def top_k(probs: np.ndarray, class_names: Sequence[str], k: int = 3) -> list[dict]:
    """The k most probable classes, best first: [{label, class_name, prob}]."""
    order = np.argsort(-np.asarray(probs), kind="stable")[:max(1, min(k, len(probs)))]
    return [{"label": int(i), "class_name": class_names[i], "prob": float(probs[i])} for i in order]


def describe(name: str, loaded: LoadedModel, probs: np.ndarray, k: int = 3) -> dict:
    """One model's answer for one input: model, arch, label, class_name, confidence, probs, top_k."""
    best = top_k(probs, loaded.class_names, k)
    return {"model": name, "arch": loaded.arch, "label": best[0]["label"],
            "class_name": best[0]["class_name"], "confidence": best[0]["prob"],
            "probs": [float(p) for p in probs], "top_k": best}


def predict_image(models: Models, pre: Preprocessed, k: int = 3) -> list[dict]:
    """Each model's answer (see `describe`) for one preprocessed image, in the order of `models`."""
    probs = predict_batch(models, pre.tensor_input[None])
    return [describe(name, models[name], p[0], k) for name, p in probs.items()]


# --- reading the answers ---------------------------------------------------------------------


def disagreement(results: Sequence[dict]) -> str | None:
    """A sentence naming each model's answer when the models do not all predict the same class."""
    if len({r["label"] for r in results}) <= 1:
        return None
    answers = ", ".join(f"{r['model']} says {r['class_name']} ({r['confidence']:.0%})" for r in results)
    return f"The models disagree: {answers}."


def dissenting_models(results: Sequence[dict]) -> set[str]:
    """Models whose answer differs from the majority's; every model when there is no single majority."""
    counts: dict[int, int] = {}
    for r in results:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    if len(counts) <= 1:
        return set()
    top = max(counts.values())
    leaders = [label for label, n in counts.items() if n == top]
    if len(leaders) > 1:
        return {r["model"] for r in results}
    return {r["model"] for r in results if r["label"] != leaders[0]}


def input_warnings(pre: Preprocessed, results: Sequence[dict], style: str,
                   threshold: float = LOW_CONFIDENCE) -> list[str]:
    """Plain-words warnings: unsure models, or an input whose ink is unlike the training images."""
    warnings = []
    unsure = [r for r in results if r["confidence"] < threshold]
    if unsure:
        who = ", ".join(f"{r['model']} {r['confidence']:.0%} ({r['class_name']})" for r in unsure)
        warnings.append(f"Low confidence: under {threshold:.0%} sure — {who}. Treat the answer as a guess; "
                        f"a clearer, centred {_OBJECT[style]} helps.")
    unusual = unusual_ink(pre.ink_stats, style)
    if unusual:
        warnings.append(unusual)
    return warnings


def unusual_ink(stats: Mapping[str, float], style: str) -> str | None:
    """A sentence when the ink statistics lie outside the typical range of the dataset, else None."""
    if not stats:
        return None
    fraction = stats.get("ink_fraction", 0.0)
    low, high = TYPICAL_RANGES[style]["ink_fraction"]
    typical = REFERENCE_STATS[style]["ink_fraction"]
    mean_low, mean_high = TYPICAL_RANGES[style]["mean_intensity"]
    mean = stats.get("mean_intensity", 0.0)
    if low <= fraction <= high and mean_low <= mean <= mean_high:
        return None
    if style == "digits":
        why = ("the strokes are very thick or filled in" if fraction > high or mean > mean_high
               else "the strokes are very thin or faint")
    else:
        why = ("the object fills much more of the frame than usual" if fraction > high or mean > mean_high
               else "the object is very small, thin or faint")
    return (f"This input looks unlike the {_TRAINING_SET[style]} the models learned from: {why} "
            f"(ink covers {fraction:.0%} of the 28x28 input; typically {low:.0%}–{high:.0%}, "
            f"on average {typical:.0%}). Predictions may be unreliable.")


# --- robustness probe ------------------------------------------------------------------------


@dataclass
class Probe:
    """Each model's answer for the input and for each of its variants (shifted, rotated, ...)."""

    names: list[str]  # "original", then the variant names
    images: list[np.ndarray]  # 28x28 float32 each
    answers: dict[str, list[tuple[int, float]]]  # model -> (label, confidence) per image
    class_names: list[str] = field(default_factory=list)

    def stability(self) -> dict[str, float]:
        """Share of the variants on which each model keeps its original answer."""
        return {m: float(np.mean([a[0] == ans[0][0] for a in ans[1:]])) for m, ans in self.answers.items()}

    def table(self) -> list[dict]:
        """Rows {variant, <model>: "7 · 98%" (with ✗ where the answer changed)} for display."""
        rows = []
        for i, name in enumerate(self.names):
            row = {"variant": name}
            for model, ans in self.answers.items():
                label, conf = ans[i]
                mark = " ✗" if i and label != ans[0][0] else ""
                row[model] = f"{self.class_names[label]} · {conf:.0%}{mark}"
            rows.append(row)
        return rows


def robustness_probe(models: Models, pre: Preprocessed) -> Probe:
    """Predict the input and its variants (core.inference.probe.variants) with every model, one batch each."""
    x = pre.tensor_input.reshape(28, 28)
    named = [("original", x), *variants(x)]
    batch = np.stack([img for _, img in named])[:, None]
    probs = predict_batch(models, batch)
    answers = {m: [(int(p.argmax()), float(p.max())) for p in pr] for m, pr in probs.items()}
    class_names = next(iter(models.values())).class_names if models else []
    return Probe([n for n, _ in named], [img for _, img in named], answers, list(class_names))


# --- many files ------------------------------------------------------------------------------


@dataclass
class FileResult:
    """One file's outcome: the decoded image, its preprocessing and each model's answer, or an error."""

    file: str
    image: np.ndarray | None = None  # RGBA uint8 as decoded
    pre: Preprocessed | None = None
    results: list[dict] = field(default_factory=list)
    error: str | None = None


def blank_message(name: str, style: str) -> str:
    return f"{name}: nothing to predict, the image looks blank (no {_OBJECT[style]} found)"


def request_problem(n_images: int, n_models: int) -> str | None:
    """Why a Predict request of `n_images` images through `n_models` models (each explained and probed) is
    refused, or None when it is within the limits."""
    return (hosting.over_limit("images in one request", n_images, hosting.PREDICT_IMAGES)
            or hosting.over_limit("models in one request", n_models, hosting.PREDICT_MODELS))


def predict_files(models: Models, files: Sequence[tuple[str, bytes]], style: str, k: int = 3) -> list[FileResult]:
    """Decode, preprocess and predict each (name, bytes); a bad or blank file gets an error, the rest go on.

    All good files are scored in one batch per model. More files or models than the request limits
    (core.hosting: PREDICT_IMAGES, PREDICT_MODELS) are a ValueError before any is decoded.
    """
    problem = request_problem(len(files), len(models))
    if problem:
        raise ValueError(problem)
    out: list[FileResult] = []
    for name, image, error in decode_many(list(files)):
        if error is not None:
            out.append(FileResult(name, error=error))
            continue
        try:
            pre = preprocess(image, style)
        except ValueError as exc:
            out.append(FileResult(name, image, error=f"{name}: cannot be prepared for the model ({exc})"))
            continue
        if pre.is_blank:
            out.append(FileResult(name, image, pre, error=blank_message(name, style)))
        else:
            out.append(FileResult(name, image, pre))
    good = [r for r in out if r.error is None]
    if good and models:
        probs = predict_batch(models, np.stack([r.pre.tensor_input for r in good]))
        for i, r in enumerate(good):
            r.results = [describe(m, models[m], p[i], k) for m, p in probs.items()]
    return out


def results_table(file_results: Sequence[FileResult], model_names: Sequence[str]) -> list[dict]:
    """Rows {file, <model> prediction, <model> confidence, ..., agree, error}, one per file."""
    rows = []
    for fr in file_results:
        row: dict = {"file": fr.file}
        by_model = {r["model"]: r for r in fr.results}
        for m in model_names:
            r = by_model.get(m)
            row[f"{m} prediction"] = r["class_name"] if r else ""
            row[f"{m} confidence"] = round(r["confidence"], 4) if r else None
        row["agree"] = (len({r["label"] for r in fr.results}) == 1) if fr.results else None
        row["error"] = fr.error or ""
        rows.append(row)
    return rows


def results_csv(rows: Sequence[dict]) -> str:
    """The rows of `results_table` as CSV text (header from the first row's keys)."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return buffer.getvalue()


# --- helpers for the page --------------------------------------------------------------------


def default_model_choices(infos: Sequence, limit: int = DEFAULT_MODELS) -> list:
    """Which runs to preselect: the most accurate pretrained runs first, then the newest user runs.

    `infos` are core.store.runs.RunInfo (anything with `.source` and `.summary`), in list_runs order (newest
    user runs first); returns up to `limit` of them. Runs without a test accuracy come last.
    """
    def accuracy(info) -> float:
        value = (info.summary or {}).get("test_acc")
        return float(value) if isinstance(value, (int, float)) else -1.0

    pretrained = sorted((i for i in infos if i.source == "pretrained"), key=accuracy, reverse=True)
    users = [i for i in infos if i.source != "pretrained"]
    return (pretrained + users)[:limit]


def display_stages(image: np.ndarray, pre: Preprocessed) -> list[tuple[str, np.ndarray]]:
    """("raw", the image as given) followed by the preprocessing stages, for the inspector."""
    return [("raw", np.asarray(image)), *pre.stages]


# --- command line ----------------------------------------------------------------------------


def read_file(path: Path) -> bytes:
    """A file's bytes, at most one byte over the upload limit (so a huge file is refused, not read)."""
    with open(path, "rb") as f:
        return f.read(MAX_UPLOAD_BYTES + 1)


def style_for(loaded: LoadedModel, choice: str) -> str:
    """The preprocessing style: `choice`, or the run's dataset's style for "auto"."""
    return STYLE_BY_DATASET.get(loaded.dataset, "digits") if choice == "auto" else choice


def cli_records(runs_: Sequence[tuple[str, LoadedModel]], paths: Sequence[str], style: str = "auto",
                k: int = 3) -> list[dict]:
    """One JSON-ready record per image per run, in image order then run order."""
    records = []
    contents: list[tuple[str, bytes | None, str | None]] = []
    for p in paths:
        try:
            contents.append((p, read_file(Path(p)), None))
        except OSError as exc:
            contents.append((p, None, f"{p}: cannot read the file ({exc.strerror or type(exc).__name__})"))
    per_run = {}
    for run_name, loaded in runs_:
        readable = [(p, data) for p, data, err in contents if err is None]
        results = predict_files({run_name: loaded}, readable, style_for(loaded, style), k)
        per_run[run_name] = {r.file: r for r in results}
    for p, _data, read_error in contents:
        for run_name, loaded in runs_:
            if read_error:
                records.append({"file": p, "run": run_name, "error": read_error})
                continue
            fr = per_run[run_name][p]
            if fr.error:
                records.append({"file": p, "run": run_name, "error": fr.error})
                continue
            r = fr.results[0]
            warnings = input_warnings(fr.pre, fr.results, style_for(loaded, style))
            records.append({"file": p, "run": run_name, "label": r["label"], "class_name": r["class_name"],
                            "confidence": round(r["confidence"], 6),
                            "top_k": [{**t, "prob": round(t["prob"], 6)} for t in r["top_k"]],
                            "warnings": warnings})
    return records
