"""Benchmarks and the bench log generator; run as ``python -m bench NAME [args]``."""
