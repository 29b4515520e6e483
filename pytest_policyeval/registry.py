"""Lookups over the hooks in `hookspec.py`: the one registry of engines, schemes, gates and sinks.

Under pytest the plugin hands over its plugin manager (`use`), so conftest files and pytest
plugins take part. Elsewhere (`policyeval merge`, benchmarks) a manager of the `pytest_policyeval`
entry points (the built-in implementations are among them) is made on first use.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import pluggy

# Modules with hook implementations, the built-in ones included (pyproject.toml names them), so
# every engine, scheme, gate and sink is registered the same way.
ENTRY_POINT_GROUP = "pytest_policyeval"

_manager: pluggy.PluginManager | None = None


class RegistryError(LookupError):
    """A name nothing is registered under; the message lists what is."""


def add_to(manager: pluggy.PluginManager) -> None:
    """Give `manager` this package's hooks, its built-in implementations and the entry points."""
    from pytest_policyeval import hookspec

    manager.add_hookspecs(hookspec)
    manager.load_setuptools_entrypoints(ENTRY_POINT_GROUP)


def use(manager: pluggy.PluginManager | None) -> pluggy.PluginManager | None:
    """Look things up through `manager` from now on (None: a standalone one); returns the one
    used before, for a nested pytest run (pytester) to hand back when it ends."""
    global _manager
    previous, _manager = _manager, manager
    return previous


def manager() -> pluggy.PluginManager:
    global _manager
    if _manager is None:
        standalone = pluggy.PluginManager("pytest")
        add_to(standalone)
        _manager = standalone
    return _manager


def _resolve(value: Any) -> Any:
    if isinstance(value, str) and ":" in value:
        module, _, attribute = value.partition(":")
        return getattr(importlib.import_module(module), attribute)
    return value


def table(hook: str) -> dict[str, Any]:
    """Everything registered through a registry hook, the last-registered plugin winning a name."""
    merged: dict[str, Any] = {}
    for part in reversed(getattr(manager().hook, hook)()):  # pluggy answers last-registered first
        merged.update(part or {})
    return merged


def installed(hook: str, name: str) -> bool:
    """Whether `name` comes from an installed package (an entry point, this package's built-ins)
    rather than a conftest.py or a plugin object registered by hand: only those are there in a
    process that pytest does not start, such as a Ray worker."""
    modules = _entry_point_modules()
    for impl in getattr(manager().hook, hook).get_hookimpls()[::-1]:  # last registered first
        if name in (impl.function() or {}):
            return getattr(impl.plugin, "__name__", None) in modules
    return False


def registrar(hook: str, name: str) -> Any:
    """The hook implementation (a function) whose entry for `name` wins, as `table` merges them;
    None if nothing registers it. Its code decides what the name stands for (a conftest's
    `lambda uri, rest, options: Oracle(uri, GUESS)`), beside the class it returns."""
    for impl in getattr(manager().hook, hook).get_hookimpls()[::-1]:  # last registered first
        if name in (impl.function() or {}):
            # A plugin object's hook is a bound method: its function is the code.
            return getattr(impl.function, "__func__", impl.function)
    return None


@functools.cache
def _entry_point_modules() -> frozenset[str]:
    """Modules of this group's entry points, read once (installed packages do not change in a run).
    Only this group: a worker's own manager loads it, not pytest's plugins (pytest11)."""
    from importlib.metadata import entry_points

    return frozenset(point.value.partition(":")[0] for point in entry_points(group=ENTRY_POINT_GROUP))


def lookup(hook: str, name: str, what: str) -> Any:
    """The thing registered as `name`, imported if it was named lazily."""
    found = table(hook)
    if name not in found:
        raise RegistryError(f"unknown {what} '{name[:80]}'; known: {sorted(found)}")
    return _resolve(found[name])


def engine(name: str) -> Any:
    return lookup("pytest_policyeval_engines", name, "engine")


def gate(name: str) -> Any:
    return lookup("pytest_policyeval_gates", name, "gate")
