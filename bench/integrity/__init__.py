"""`make bench-integrity`: generated like streams with planted attacks, and the detector scored
on them (see bench/integrity/run.py and docs/integrity-bench.md)."""
