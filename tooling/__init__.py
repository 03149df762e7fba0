"""Offline tooling: the CLI, launcher, demo, benchmarks, evaluation, training and the report (may import anything)."""
