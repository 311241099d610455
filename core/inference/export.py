"""Export a run's model as ONNX or a torch.export program (.pt2), checked before it is offered.

One input contract for every exported file, the same as the app's preprocessing output:
input `image` float32 [N, 1, 28, 28], values in 0..1, light ink on a dark background; output `probs`
float32 [N, 10]. Normalisation and (where the run uses it) flip test-time averaging are inside the
graph; the batch dimension is dynamic.

Checks: ONNX Runtime against PyTorch on up to 1,000 test images (max |difference| of the probabilities
at most 1e-4 and the same class for every image); the .pt2 is loaded back with torch.export.load in a
fresh Python process that cannot import this repository, and compared the same way.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from core.data.datasets import DataUnavailableError, load_split, to_unit_float
from core.store import atomic
from core.store.checkpoint import LoadedModel

INPUT_NAME, OUTPUT_NAME = "image", "probs"
FORMATS = ("onnx", "pt2")
PARITY_IMAGES = 1000
TOLERANCE = 1e-4  # max absolute difference of probabilities between the runtime and PyTorch
MAX_BATCH = 1 << 16  # the dynamic batch dimension's declared upper bound
FRESH_PROCESS_TIMEOUT = 300  # seconds for the .pt2 reload check (imports torch on a busy machine)

# Run with `python -I` in an empty folder: only installed packages can be imported, nothing from this repository.
_PT2_CHECK = """
import sys
import numpy as np
import torch
program = torch.export.load(sys.argv[1])
with torch.no_grad():
    probs = program.module()(torch.from_numpy(np.load(sys.argv[2])))
np.save(sys.argv[3], probs.numpy())
leaked = sorted(m for m in sys.modules if m == "core" or m.startswith(("core.", "app.")))
assert not leaked, f"repository modules were imported: {leaked}"
"""


class ExportError(RuntimeError):
    """An export that could not be written or failed its check; nothing was offered."""


class ContractModel(nn.Module):
    """A trained model behind the exported contract: 0..1 images in, softmax probabilities out."""

    def __init__(self, model: nn.Module, mean: float, std: float, tta_flip: bool):
        super().__init__()
        self.model = model
        self.mean, self.std, self.tta_flip = float(mean), float(std), bool(tta_flip)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image - self.mean) / self.std
        probs = self.model(x).softmax(1)
        if self.tta_flip:
            probs = (probs + self.model(x.flip(3)).softmax(1)) / 2
        return probs


def contract_model(loaded: LoadedModel) -> ContractModel:
    """The exportable module of a loaded run (eval mode, float32, on the CPU)."""
    return ContractModel(loaded.model, loaded.mean, loaded.std, loaded.tta_flip).eval()


def check_images(dataset: str, n: int = PARITY_IMAGES) -> tuple[torch.Tensor, str]:
    """(float32 [n,1,28,28] in 0..1, where they come from): the first n test images, or seeded noise without data."""
    try:
        images, _ = load_split(dataset, train=False)
        return to_unit_float(images[:n]), f"{min(n, len(images)):,} {dataset} test images"
    except (DataUnavailableError, ValueError):
        generator = torch.Generator().manual_seed(0)
        return torch.rand(n, 1, 28, 28, generator=generator), f"{n:,} random images (the test set is not here)"


@dataclass
class Check:
    """The figures of an export's check, shown with the download."""

    format: str
    images: int
    source: str
    max_abs_diff: float
    same_class: int
    seconds: float

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= TOLERANCE and self.same_class == self.images

    def summary(self) -> str:
        runtime = "ONNX Runtime" if self.format == "onnx" else "torch.export.load in a fresh process"
        verdict = "passed" if self.passed else "FAILED"
        return (f"Check {verdict}: {runtime} vs PyTorch on {self.source}: max |Δp| {self.max_abs_diff:.1e} "
                f"(limit {TOLERANCE:.0e}), same class for {self.same_class:,} of {self.images:,}.")

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def compare(fmt: str, got: np.ndarray, expected: np.ndarray, source: str, seconds: float) -> Check:
    """A Check from the exported file's probabilities and PyTorch's."""
    if got.shape != expected.shape:
        raise ExportError(f"{fmt} output has shape {got.shape}, expected {expected.shape}")
    diff = float(np.abs(got - expected).max()) if got.size else 0.0
    same = int((got.argmax(1) == expected.argmax(1)).sum())
    return Check(fmt, len(expected), source, diff, same, round(seconds, 2))


def _batch_dim():
    return {INPUT_NAME: {0: torch.export.Dim("batch", min=1, max=MAX_BATCH)}}


def _example() -> tuple[torch.Tensor]:
    return (torch.rand(2, 1, 28, 28),)


def write_onnx(module: ContractModel, path: Path) -> None:
    """Export `module` as one self-contained ONNX file (dynamo exporter, dynamic batch)."""
    program = torch.onnx.export(module, _example(), dynamo=True, input_names=[INPUT_NAME],
                                output_names=[OUTPUT_NAME], dynamic_shapes=_batch_dim(), verbose=False)
    Path(path).write_bytes(program.model_proto.SerializeToString())


def write_pt2(module: ContractModel, path: Path) -> None:
    """Export `module` as a torch.export program (.pt2, dynamic batch)."""
    program = torch.export.export(module, _example(), dynamic_shapes=_batch_dim())
    torch.export.save(program, str(path))


def onnx_probs(path: Path, images: np.ndarray) -> np.ndarray:
    """Probabilities from ONNX Runtime (CPU) for float32 images [N,1,28,28]."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]


def pt2_probs_fresh_process(path: Path, images: np.ndarray) -> np.ndarray:
    """Probabilities from the .pt2 loaded with torch.export.load in a new `python -I` process (nothing of this repo)."""
    with tempfile.TemporaryDirectory(prefix="pt2-check-") as tmp:
        inputs, outputs = Path(tmp) / "images.npy", Path(tmp) / "probs.npy"
        np.save(inputs, images)
        done = subprocess.run([sys.executable, "-I", "-c", _PT2_CHECK, str(Path(path).resolve()), str(inputs),
                               str(outputs)], cwd=tmp, capture_output=True, text=True,
                              timeout=FRESH_PROCESS_TIMEOUT)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ExportError(f"the .pt2 did not load in a fresh process: {last}")
        return np.load(outputs)


WRITERS = {"onnx": write_onnx, "pt2": write_pt2}
RUNNERS = {"onnx": onnx_probs, "pt2": pt2_probs_fresh_process}


def export_model(loaded: LoadedModel, fmt: str, out: Path) -> Check:
    """Write `loaded` as `fmt` to `out` atomically, only once its check passed; the Check, or ExportError."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown model format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    module = contract_model(loaded)
    images, source = check_images(loaded.dataset)
    with torch.no_grad():
        expected = module(images).numpy()
    out = Path(out)
    with atomic.replacing(out) as tmp:
        try:
            WRITERS[fmt](module, tmp)
        except Exception as err:  # the exporters raise many types; one line names the failure
            first = (str(err).splitlines() or [""])[0][:300]
            raise ExportError(f"{fmt} export failed: {type(err).__name__}: {first}") from err
        start = time.perf_counter()
        got = RUNNERS[fmt](tmp, images.numpy())
        check = compare(fmt, got, expected, source, time.perf_counter() - start)
        if not check.passed:
            raise ExportError(check.summary())
    return check
