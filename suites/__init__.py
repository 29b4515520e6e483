"""The shipped simulation suites, installed as `pytest_policyeval.suites` (see pyproject.toml).

This file makes the folder an importable package, also in an editable install, so that
`importlib.resources` finds the suites by name from any folder.
"""
