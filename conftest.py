"""Repository-level pytest configuration.

A bare `pytest` here runs the project's own tests (`testpaths = ["tests"]` in pyproject.toml);
the suites under `suites/` are collected only when named, with `--policy-uri`.
"""
