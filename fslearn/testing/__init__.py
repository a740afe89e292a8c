"""Helpers for the project's own tests (not needed to use the package).

* :mod:`fslearn.testing.nbval_approx`: a pytest plugin that lets a notebook cell compare the
  numbers of its outputs with a tolerance under ``pytest --nbval`` (``# NBVAL_APPROX pct=1.5``),
  for figures that depend on the CPU's float rounding, such as those of a short training run.
"""
