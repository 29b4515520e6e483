"""pytest-policyeval: evaluate reinforcement-learning policies as pytest tests."""

__version__ = "0.1.0"
