"""Experiments: grids and searches of TrainConfig settings, run as normal runs by workers sharing one Optuna study."""
