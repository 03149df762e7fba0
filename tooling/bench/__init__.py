"""Benchmarks (`make bench`): one module per section, baselines measured in the same run."""
