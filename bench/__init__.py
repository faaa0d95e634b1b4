"""Benchmarks (`make bench`, `make bench-cpu`): ratios measured in one run, never asserts.
They import the product and testkit/, never tests/."""
