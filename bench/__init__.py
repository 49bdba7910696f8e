"""Benchmarks: each measures dnft against a baseline or a peer in the same run and prints
ratios. Run one as a module from the repository root: ``.venv/bin/python -m bench.render``."""
