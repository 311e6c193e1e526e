"""Benchmarks: each ``bench_*.py`` measures one path against a baseline in the same run."""
