"""The plugin's hooks: how other packages and conftest.py files extend pytest-policyeval.

Everything registrable goes through one mechanism, pluggy: implement these hooks in a
`conftest.py`, in a pytest plugin, or in a module named by a `pytest_policyeval` entry point
(which also reaches the `policyeval` command outside pytest). The built-in behaviour is written as
implementations of the same hooks (the `*/hooks.py` modules, named in pyproject.toml under that
group), so a new engine, policy scheme, gate or sink is added exactly as the shipped ones are,
without editing the package.

The registry hooks return `{name: thing}`; a thing may be given as "module:attribute" so that
nothing is imported until it is used. A name defined twice is taken from the plugin registered
last (a conftest overrides a built-in).
"""

from __future__ import annotations

from typing import Any

import pytest

hookspec = pytest.hookspec


@hookspec
def pytest_policyeval_engines() -> dict[str, Any]:
    """Engines by name (`engine:` in a suite): objects following `engines.base.Engine`."""


@hookspec
def pytest_policyeval_policy_schemes() -> dict[str, Any]:
    """Policy URI schemes: `loader(uri, rest, options) -> Policy` (policies.uri.Loader) by scheme."""


@hookspec
def pytest_policyeval_policy_sources() -> dict[str, Any]:
    """Remote stores a checkpoint is downloaded from, by scheme: `Source` classes (policies.sources)."""


@hookspec
def pytest_policyeval_gates() -> dict[str, Any]:
    """Gates by name (`gate:` in a suite): objects following `gates.base.Gate`."""


@hookspec
def pytest_policyeval_sinks() -> dict[str, Any]:
    """Result destinations by URI scheme (`--eval-output-uri`): `Sink` classes taking the URI."""


@hookspec
def pytest_policyeval_metta_architectures() -> dict[str, Any]:
    """Network classes a Metta config's `_target_` may name, by that name (policies.metta)."""


@hookspec
def pytest_policyeval_metta_presets() -> dict[str, Any]:
    """What a Metta checkpoint's channels and actions mean (`policies.metta.presets.Preset`), by name."""


@hookspec
def pytest_policyeval_results_document(document: dict[str, Any], results: list[Any]) -> None:
    """Add to the results JSON before it is written: `document` is the dict, `results` the
    `TaskResult`s it was made from. Keys added must be JSON-able; the built-in ones must stay."""


@hookspec
def pytest_policyeval_publish(document: dict[str, Any], results: list[Any], publishing: Any) -> None:
    """Publish a finished run (called once, on the controller, after the files are written).

    `publishing` (reporting.publishing.Publishing) holds the options, the run's facts and the
    films, and collects what was published and what failed; raise `PublishError` to report a
    failure that fails the run. Built in: W&B logging (--wandb) and the output URI."""
