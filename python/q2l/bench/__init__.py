"""Benchmarks that compare q2l-rs against plain-PyTorch references in the same process.

Run ``python -m q2l.bench loss``. Results are printed as tables of medians and ratios;
nothing here is a pass/fail test.
"""
