"""The optimiser and the learning-rate schedule a TrainConfig asks for."""

from __future__ import annotations

import math

import torch

from core.training.config import TrainConfig


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimiser; weight decay applies to weights, not to biases or batch-norm scales."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr)
    if config.optimizer in ("momentum", "nesterov"):
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               nesterov=config.optimizer == "nesterov")
    betas = (config.momentum, 0.999)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=betas)
    return torch.optim.AdamW(groups, lr=config.lr, betas=betas)


def lr_at(step: int, total_steps: int, config: TrainConfig) -> float:
    """Learning rate for optimiser step `step` (0-based) of `total_steps` under the configured schedule."""
    progress = step / max(1, total_steps)
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "step":
        steps_per_epoch = total_steps / config.epochs
        return config.lr * config.step_gamma ** int(step / (steps_per_epoch * config.step_every))
    if config.schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * progress))
    warm = config.warmup  # onecycle: linear warm-up from lr/10 to lr, then linear decay to 0
    if warm > 0 and progress < warm:
        return config.lr * (0.1 + 0.9 * progress / warm)
    return config.lr * max(0.0, (1 - progress) / (1 - warm))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Put `lr` into every parameter group."""
    for group in optimizer.param_groups:
        group["lr"] = lr
