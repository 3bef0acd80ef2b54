"""Benchmarks, one script a measurement; run them from the repository root with PYTHONPATH=.."""
