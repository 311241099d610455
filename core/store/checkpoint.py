"""Checkpoints that say what they are: weights plus the architecture, its arguments, dataset and normalisation."""

from __future__ import annotations

import importlib.metadata
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from core.models.cost import model_problems
from core.models.registry import create_model, model_names
from core.store import atomic

FORMAT = "mnist-studio/1"
REQUIRED_KEYS = ("arch", "model_kwargs", "dataset", "class_names", "mean", "std", "state_dict")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely or does not fit its architecture."""


def _plain_state_dict(model: nn.Module, half: bool) -> dict[str, torch.Tensor]:
    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {}
    for key, value in module.state_dict().items():
        value = value.detach().cpu().contiguous()
        state[key] = value.half() if half and value.is_floating_point() else value.clone()
    return state


def torchvision_version() -> str:
    """torchvision's installed version, read from its package metadata: importing torchvision for its
    `__version__` costs a training process about 3 CPU seconds (it pulls in torch._dynamo)."""
    try:
        return importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def save_checkpoint(path: Path, model: nn.Module, *, arch: str, model_kwargs: dict, dataset: str,
                    class_names: list[str], mean: float, std: float, half: bool = False, **extra) -> None:
    """Atomically save weights with everything needed to rebuild the model (and `extra`, e.g. optimizer state)."""
    payload = {
        "format": FORMAT, "arch": arch, "model_kwargs": dict(model_kwargs), "dataset": dataset,
        "class_names": list(class_names), "mean": float(mean), "std": float(std),
        "state_dict": _plain_state_dict(model, half),
        "versions": {"torch": str(torch.__version__), "torchvision": torchvision_version()},
        **extra,
    }
    atomic.write_torch(Path(path), payload)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint with weights_only=True; anything else (code, unknown layout) is refused clearly."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.name}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = next((line.strip() for line in str(err).splitlines() if "Unsupported" in line), "")
        raise CheckpointError(f"{path.name}: refused, it holds objects that are not plain weights (only tensors "
                              f"and plain data are loaded, so no code can run). {reason}".strip()) from err
    except Exception as err:  # truncated zip, not a torch file, ...
        raise CheckpointError(f"{path.name}: not a readable checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path.name}: not an mnist-studio checkpoint (a bare {type(payload).__name__})")
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{path.name}: not an mnist-studio checkpoint (missing {', '.join(missing)})")
    if payload["arch"] not in model_names():
        raise CheckpointError(f"{path.name}: unknown architecture {payload['arch']!r}; "
                              f"known: {', '.join(model_names())}")
    return payload


def model_from_checkpoint(payload: dict, name: str = "checkpoint") -> nn.Module:
    """Rebuild the model a checkpoint describes, load its weights (float32), and put it in eval mode; the
    architecture's size is checked against the bounds first, so a small file cannot make us allocate a huge
    model."""
    problems = model_problems(payload["arch"], payload["model_kwargs"]) \
        if isinstance(payload["model_kwargs"], dict) else ["model_kwargs is not a mapping"]
    if problems:
        raise CheckpointError(f"{name}: {'; '.join(problems)}")
    try:
        model = create_model(payload["arch"], **payload["model_kwargs"])
    except ValueError as err:
        raise CheckpointError(f"{name}: {err}") from err
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = " ".join(str(err).split())[:300]
        raise CheckpointError(f"{name}: weights do not fit architecture {payload['arch']!r}: {first}") from err
    return model.eval()


@dataclass
class LoadedModel:
    """A ready-to-use model with what is needed to feed it."""

    model: nn.Module
    arch: str
    dataset: str
    class_names: list[str]
    mean: float
    std: float
    tta_flip: bool
    path: Path


def load_model(run_dir: Path, which: str = "best") -> LoadedModel:
    """The `best` (or `last`) model of a run directory, ready for inference on the CPU."""
    run_dir = Path(run_dir)
    path = run_dir / f"{which}.pt"
    if which == "best" and not path.is_file():
        path = run_dir / "last.pt"
    payload = load_checkpoint(path)
    model = model_from_checkpoint(payload, f"{run_dir.name}/{path.name}")
    tta = bool(payload.get("config", {}).get("tta_flip", False))
    return LoadedModel(model, payload["arch"], payload["dataset"], list(payload["class_names"]),
                       float(payload["mean"]), float(payload["std"]), tta, run_dir)
