"""TrainConfig, presets, the training loop, optimiser and schedule, weight averaging, distributed training."""
