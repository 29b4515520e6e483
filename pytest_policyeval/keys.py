"""The stash keys the plugin's parts share, in one module that imports none of them.

The session lives in `config.stash`; each task item carries its result and its recorded episodes
in `item.stash` from the test function to the report hooks (terminal, xdist, HTML).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_policyeval.session import EvalSession

SESSION_KEY = pytest.StashKey["EvalSession"]()
RESULT_KEY = pytest.StashKey[dict]()  # an item's TaskResult, as a dict
FILMS_KEY = pytest.StashKey[list]()  # an item's recorded episodes for the HTML report (Films)


def session_of(config: pytest.Config) -> EvalSession:
    return config.stash[SESSION_KEY]
