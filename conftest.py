"""Plugins for every pytest run from the repository root (unit tests and ``--nbval`` alike).

``fslearn.testing.nbval_approx`` gives notebook cells marked ``# NBVAL_APPROX pct=... abs=...``
a comparison of their numbers with a tolerance (see exercises/README.md, "Notebook outputs that
depend on the CPU"); it does nothing unless nbval collects notebooks.
"""

pytest_plugins = ["fslearn.testing.nbval_approx"]
