"""Resilience: real processes of a `make run` stack killed, stopped and restarted (see stack.py)."""
