"""An environment's keyword arguments as a suite gives them: JSON scalars (and lists of them), checked.

Suites are data: an argument is a number, a string, a boolean, null or (where an engine allows)
a list of those, never an object. They are kept as sorted (name, value) pairs so that an engine's
settings hash (a Task is an lru_cache key) and dump (the episode cache key) the same whatever
order the suite wrote them in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_ARGUMENTS = 32
MAX_LIST = 256
MAX_STRING = 512
MAX_INT = 2**53  # what every JSON reader keeps exact

Scalar = bool | int | float | str | None
Value = Scalar | tuple[Scalar, ...]


def scalar(name: str, value: Any, lists: bool = False, max_int: int = MAX_INT) -> Scalar:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > max_int:
            raise ValueError(f"'{name}': integers must lie within +-{max_int:g}")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"'{name}': numbers must be finite")
        return value
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise ValueError(f"'{name}': strings are at most {MAX_STRING} characters")
        return value
    kinds = "a string, number, boolean or null" + (
        ", or a flat list of them (no lists of lists)" if lists else ""
    )
    raise ValueError(f"'{name}': must be {kinds} (got {type(value).__name__})")


def keyword_arguments(
    value: Any, refused: Mapping[str, str], lists: bool = True, max_int: int = MAX_INT
) -> tuple[tuple[str, Value], ...]:
    """Checked, sorted (name, value) pairs from a mapping (or the dumped pairs). `refused` names the
    arguments an engine sets itself, with why; `lists` allows lists of scalars as values; `max_int`
    bounds integers (an engine whose arguments size the world keeps it small)."""
    if value is None:
        return ()
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list | tuple) and all(
        isinstance(pair, list | tuple) and len(pair) == 2 for pair in value
    ):
        items = [tuple(pair) for pair in value]  # the dumped form, [[name, value], ...]
    else:
        raise ValueError("must be a mapping of argument names to values")
    if len(items) > MAX_ARGUMENTS:
        raise ValueError(f"at most {MAX_ARGUMENTS} arguments")
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise ValueError("an argument is given twice")
    pairs = []
    for name, item in items:
        if not isinstance(name, str) or not NAME.match(name):
            raise ValueError(f"argument names are Python identifiers (got {str(name)[:64]!r})")
        if name in refused:
            raise ValueError(f"'{name}' cannot be set: {refused[name]}")
        if lists and isinstance(item, list | tuple):
            if len(item) > MAX_LIST:
                raise ValueError(f"'{name}': lists are at most {MAX_LIST} items")
            pairs.append((name, tuple(scalar(name, element, lists, max_int) for element in item)))
        else:
            pairs.append((name, scalar(name, item, lists, max_int)))
    return tuple(sorted(pairs))
