"""Benchmarks (scripts, not tests): `python -m bench` runs them all; each `python -m bench.NAME` runs one."""
