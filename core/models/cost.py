"""What a model costs before it exists, and the bounds a request must stay within.

The model is built on PyTorch's `meta` device: every tensor has a shape and no storage, so counting the
parameters and running one 1x28x28 image through it (for the multiply-adds) takes milliseconds and no memory,
whatever the arguments ask for. The bounds are environment variables, declared here once.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import threading
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from core.models.registry import count_macs, count_parameters, create_model, get_entry

MAX_PARAMS_ENV = "MNIST_STUDIO_MAX_PARAMS"
MAX_MACS_ENV = "MNIST_STUDIO_MAX_MACS"
# ResNet-18 has 11.2M parameters and 0.46G multiply-adds per image, a `best` net 4x wider 10.0M and 0.78G;
# 50M float32 parameters with their gradients and optimiser state take under 1 GB.
DEFAULT_MAX_PARAMS = 50_000_000
DEFAULT_MAX_MACS = 5_000_000_000
# Weight and buffer tensors a model may register (ResNet-18 registers 123): bounds the time the meta build
# itself takes (about 0.1 ms a tensor) when an argument such as `depth` asks for millions of layers.
MAX_TENSORS = 1_000


@dataclass(frozen=True)
class ModelCost:
    """Parameters (learned or fixed) and multiply-accumulates of one forward pass on one 1x28x28 image."""

    params: int
    macs: int


class TooManyTensors(ValueError):
    """The model registers more weight and buffer tensors than MAX_TENSORS while it is being built."""


def _bound(env: str, default: int) -> int:
    """A positive whole-number bound from $env, else `default`; a malformed value is a clear error."""
    text = os.environ.get(env, "").strip()
    if not text:
        return default
    try:
        value = int(text)  # underscores allowed: 50_000_000
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"${env} must be a positive whole number, got {text!r}")
    return value


def max_params() -> int:
    """The most parameters a model may have: $MNIST_STUDIO_MAX_PARAMS, else 50,000,000."""
    return _bound(MAX_PARAMS_ENV, DEFAULT_MAX_PARAMS)


def max_macs() -> int:
    """The most multiply-adds per image a model may need: $MNIST_STUDIO_MAX_MACS, else 5,000,000,000."""
    return _bound(MAX_MACS_ENV, DEFAULT_MAX_MACS)


_building = threading.local()  # the tensor count of a meta build in progress on this thread


def _count_tensor(_module, _name, _tensor) -> None:
    count = getattr(_building, "tensors", None)
    if count is None:  # another thread building a real model: not ours to count
        return
    _building.tensors = count + 1
    if _building.tensors > MAX_TENSORS:
        raise TooManyTensors(f"it registers more than {MAX_TENSORS:,} weight and buffer tensors")


@functools.cache
def _install_tensor_counter() -> None:
    """Count tensor registrations of every module (once per process; a no-op outside estimate_cost)."""
    nn.modules.module.register_module_parameter_registration_hook(_count_tensor)
    nn.modules.module.register_module_buffer_registration_hook(_count_tensor)


def estimate_cost(name: str, **kwargs) -> ModelCost:
    """Parameters and multiply-adds of model `name` built with `kwargs`, without allocating its weights.

    Raises ValueError (or whatever the model's constructor raises) when it cannot be built with them.
    """
    _install_tensor_counter()
    _building.tensors = 0
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Initializing zero-element tensors is a no-op"
            model = create_model(name, **kwargs)
            return ModelCost(count_parameters(model), count_macs(model))
    finally:
        _building.tensors = None


def model_problems(name: str, kwargs: dict) -> list[str]:
    """One line per reason model `name` cannot be trained with `kwargs`: arguments it does not take, arguments
    it cannot be built with, or a size above the bounds (the figure and the bound). Empty when it can."""
    try:
        inspect.signature(get_entry(name).build).bind(**kwargs)
    except TypeError as err:
        return [f"model_kwargs: {name} does not take these arguments ({err})"]
    except ValueError as err:  # an unknown model
        return [str(err)]
    try:
        bounds = max_params(), max_macs()
    except ValueError as err:  # a malformed bound in the environment
        return [str(err)]
    return list(_cost_problems(name, json.dumps(kwargs, sort_keys=True), *bounds))


@functools.lru_cache(maxsize=256)
def _cost_problems(name: str, kwargs_json: str, params_bound: int, macs_bound: int) -> tuple[str, ...]:
    """Cached: the Train form asks on every rerun."""
    try:
        cost = estimate_cost(name, **json.loads(kwargs_json))
    except Exception as err:  # noqa: BLE001  whatever the constructor raises, the arguments do not build a model
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        return (f"model_kwargs: {name} cannot be built with these arguments ({reason})",)
    problems = []
    if cost.params > params_bound:
        problems.append(f"model_kwargs: {name} with these arguments has {cost.params:,} parameters, above the "
                        f"bound of {params_bound:,} (${MAX_PARAMS_ENV})")
    if cost.macs > macs_bound:
        problems.append(f"model_kwargs: {name} with these arguments needs {cost.macs:,} multiply-adds per image, "
                        f"above the bound of {macs_bound:,} (${MAX_MACS_ENV})")
    return tuple(problems)
