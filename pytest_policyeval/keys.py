"""The stash keys the plugin's parts share: the evaluation, the controller, an item's result.

The per-process evaluation and (on the controller) the controller live in `config.stash`; each
task item carries its result and its recorded episodes in `item.stash` from the test function to
the report hooks (terminal, xdist, HTML).
"""

from __future__ import annotations

import pytest

from pytest_policyeval.controller import Controller
from pytest_policyeval.evaluation import Evaluation

EVALUATION_KEY = pytest.StashKey[Evaluation]()
CONTROLLER_KEY = pytest.StashKey[Controller]()  # only on the controller
RESULT_KEY = pytest.StashKey[dict]()  # an item's TaskResult, as a dict
FILMS_KEY = pytest.StashKey[list]()  # an item's recorded episodes for the HTML report (Films)
# An item's result and films played elsewhere (a Ray worker): its test function reports them.
PLAYED_KEY = pytest.StashKey[tuple]()


def evaluation_of(config: pytest.Config) -> Evaluation:
    return config.stash[EVALUATION_KEY]


def controller_of(config: pytest.Config) -> Controller | None:
    return config.stash.get(CONTROLLER_KEY, None)
