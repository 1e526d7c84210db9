"""Benchmarks: seeded instances and the placement benchmark (``python bench/placement.py``)."""
