"""pytest-policyeval: evaluate reinforcement-learning policies as pytest tests.

PYTEST_DONT_REWRITE: the `policyeval` command and the service import this package before they
start pytest, which would otherwise warn that its plugin module cannot be assertion-rewritten.
"""

__version__ = "0.1.0"
