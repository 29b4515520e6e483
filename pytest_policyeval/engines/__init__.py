"""Engines: one package each (mettagrid, gymnasium, pettingzoo), behind the protocol in `base.py`.

The runner, gates and reports know only that protocol; nothing outside an engine's package
imports its simulator. Engines are found by name through the `pytest_policyeval_engines` hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_policyeval.engines.base import Engine
    from pytest_policyeval.task import Task


def engine_named(name: str) -> Engine:
    """The engine registered as `name` (`pytest_policyeval_engines`); RegistryError lists the known."""
    from pytest_policyeval import registry

    found = registry.engine(name)
    return found() if isinstance(found, type) else found


def engine_for(task: Task) -> Engine:
    return engine_named(task.engine)
