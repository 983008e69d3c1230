"""Integrity: detection of fake engagement, cases and decisions (SPEC §5, docs/integrity.md)."""
