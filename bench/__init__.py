"""`make bench`: the benchmark that prints Chorus' performance figures as ratios (SPEC §6).

Run it as `python -m bench` (see bench/runner.py and docs/benchmarks.md).
"""
