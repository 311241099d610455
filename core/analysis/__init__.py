"""Metrics, error analysis and comparison statistics over stored test outputs."""
