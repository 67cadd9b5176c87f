"""Reproducible experiments on real data (``python -m q2l.experiments.fashion``)."""
