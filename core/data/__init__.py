"""Datasets in memory, splits, batched augmentation, dataset statistics and download."""
