"""Third parties extend the plugin from a conftest: an engine, a policy scheme, a gate and a sink.

The conftest is examples/extending/conftest.py, the code the README's "Extending" section shows;
it registers everything through the hooks (hookspec.py) and touches no module of the package.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
from pathlib import Path

import pytest
from helpers import MINI_SUITE, write_suite

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples/extending"


def package_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted((REPO / "pytest_policyeval").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_a_conftest_adds_an_engine_a_scheme_a_gate_and_a_sink(pytester: pytest.Pytester) -> None:
    before = package_digest()
    shutil.copy(EXAMPLE / "conftest.py", pytester.path / "conftest.py")
    shutil.copytree(EXAMPLE / "suites", pytester.path / "suites")
    ledger = pytester.path / "published"
    result = pytester.runpytest_subprocess(
        "-p", "no:importnb", "--policy-uri", "oracle://", "--policy-uri", "random://",
        "--eval-output-uri", f"ledger://{ledger}", "--eval-json", "r.json",
    )  # fmt: skip
    result.assert_outcomes(passed=3, failed=1)
    document = json.loads((pytester.path / "r.json").read_text())
    tasks = {
        (policy["policy_uri"], name): detail
        for policy in document["policies"]
        for checkpoint in policy["checkpoints"]
        for name, detail in checkpoint["metrics"]["tasks"].items()
    }
    fair, loaded = tasks[("oracle://", "coin/fair")], tasks[("oracle://", "coin/loaded")]
    assert fair["engine"] == loaded["engine"] == "coin"
    # The conftest's gate judged the fair coin; the built-in sequential gate the loaded one.
    assert fair["gate"] == "median" and fair["reason"].startswith("median ")
    assert fair["guarantee"] == "no error guarantee: the median episode against the threshold"
    assert fair["num_episodes"] == 8 and fair["estimate"] == statistics.median(fair["episode_scores"])
    assert loaded["gate"] == "sequential" and loaded["design"]["high"] == 20.0
    # Always guessing heads wins about 90% of 20 tosses of the loaded coin; random about half.
    assert min(loaded["episode_scores"]) >= 12 and loaded["outcome"] == "pass"
    assert tasks[("random://", "coin/loaded")]["outcome"] == "fail"
    # The conftest's own key in the results document, beside the evaluator's.
    played = sum(sum(detail["episode_steps"]) for detail in tasks.values())
    assert document["coin_tosses"] == played > 0
    # The sink received every file the output URI gets, and its links name it.
    assert json.loads((ledger / "ledger.json").read_text()).keys() == {
        "results.json",
        "evaluation_results.yaml",
    }
    assert json.loads((ledger / "results.json").read_text())["policies"][0]["policy_uri"] == "oracle://"
    result.stdout.fnmatch_lines([f"results published to ledger://{ledger}/results.json"])
    assert package_digest() == before


def test_an_unknown_engine_gate_or_sink_names_what_is_known(pytester: pytest.Pytester) -> None:
    shutil.copy(EXAMPLE / "conftest.py", pytester.path / "conftest.py")
    (pytester.path / "suites").mkdir()
    (pytester.path / "suites/bad.yaml").write_text(
        "name: bad\ntasks:\n  - {name: coin/x, engine: dice, bias: 0.5}\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:importnb", "--policy-uri", "oracle://")
    known = "known: ['coin', 'gymnasium', 'mettagrid', 'pettingzoo']"
    assert f"key 'engine': unknown engine 'dice'; {known}" in result.stdout.str()
    (pytester.path / "suites/bad.yaml").write_text(
        "name: bad\ntasks:\n  - {name: coin/x, engine: coin, gate: mode, threshold: 1}\n"
    )
    result = pytester.runpytest_subprocess("-p", "no:importnb", "--policy-uri", "oracle://")
    assert (
        "key 'gate': unknown gate 'mode'; known: ['ci', 'mean', 'median', 'sequential']"
        in result.stdout.str()
    )
    (pytester.path / "suites/bad.yaml").write_text("name: bad\ntasks:\n  - {name: coin/x, engine: coin}\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:importnb", "--policy-uri", "oracle://", "--eval-output-uri", "ftp://host/x"
    )
    # Known once collection has registered every conftest's sinks, and refused before any task runs.
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "--eval-output-uri: ftp://host/x: results cannot be published to 'ftp://'; "
        "known: ['file', 'ledger', 's3', 'wandb']"
    ) in result.stderr.str()


def test_an_enclosing_run_keeps_its_registry_whatever_a_nested_run_does(
    pytester: pytest.Pytester, request: pytest.FixtureRequest
) -> None:
    from pytest_policyeval import registry

    outer = request.config.pluginmanager
    assert registry.manager() is outer
    for args in (["--version"], ["--no-such-option"], ["-p", "no:importnb", "--co"]):
        pytester.runpytest_inprocess(*args)
        assert registry.manager() is outer, args


PUBLISHERS = """
import pytest


@pytest.hookimpl
def pytest_policyeval_publish(document, results, publishing):
    raise RuntimeError("the plugin's own bug")


class Ledger:
    @pytest.hookimpl(trylast=True)
    def pytest_policyeval_publish(self, document, publishing):
        with open("published.txt", "w") as out:
            out.write(str(len(document["policies"])))


def pytest_configure(config):
    config.pluginmanager.register(Ledger(), "ledger")


@pytest.hookimpl
def pytest_policyeval_results_document(document, results):
    document["passed"] = True  # a plugin cannot change what the evaluator says
    document["policies"][0]["checkpoints"][0]["metrics"]["num_failed"] = 0
    results[0].passed = True
    document["extra"] = "kept"
"""


def test_a_failing_publisher_is_reported_and_the_others_still_publish(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PUBLISHERS)
    write_suite(
        pytester.path, MINI_SUITE.replace("threshold: 0.9", "threshold: 0.9\n    higher_is_better: false")
    )
    args = ("-p", "no:importnb", "--policy-uri", "scripted://navigator", "--eval-json", "r.json")
    result = pytester.runpytest_subprocess(*args)
    result.stdout.fnmatch_lines(
        ["*policy evaluation*", "*results NOT published: *RuntimeError: the plugin's own bug"]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert (pytester.path / "published.txt").read_text() == "1"  # the other publisher ran
    document = json.loads((pytester.path / "r.json").read_text())
    assert document["extra"] == "kept"
    assert document["passed"] is False  # the navigator reaches the goal: it fails "lower is better"
    assert document["policies"][0]["checkpoints"][0]["metrics"]["num_failed"] > 0


def test_a_change_to_a_conftest_engine_plays_its_episodes_again(pytester: pytest.Pytester) -> None:
    shutil.copy(EXAMPLE / "conftest.py", pytester.path / "conftest.py")
    shutil.copytree(EXAMPLE / "suites", pytester.path / "suites")

    def cached() -> list[bool]:
        # A built-in policy: only the engine's code is the conftest's.
        args = ("-p", "no:importnb", "--policy-uri", "random://", "--eval-json", "r.json")
        pytester.runpytest_subprocess(*args)
        document = json.loads((pytester.path / "r.json").read_text())
        details = document["policies"][0]["checkpoints"][0]["metrics"]["tasks"].values()
        return [flag for detail in details for flag in detail["episode_cached"]]

    assert not any(cached())
    assert all(cached())  # unchanged: every episode from the cache
    conftest = pytester.path / "conftest.py"
    conftest.write_text(
        conftest.read_text().replace("self.rewards[e] = float(", "self.rewards[e] = 0.0 * float(")
    )
    assert not any(cached())  # the engine's code changed: nothing kept counts


def test_a_subfolders_conftest_sink_and_document_hook_work_under_xdist(pytester: pytest.Pytester) -> None:
    """The xdist controller collects nothing, yet it writes and publishes: a conftest below the
    root (not one pytest loads at start-up) still gets its sink and its document key there, and a
    destination no sink takes is still a usage error before any task runs."""
    shutil.copytree(EXAMPLE, pytester.path / "project")
    ledger = pytester.path / "published"
    common = ("-p", "no:importnb", "-n", "2", "--policy-uri", "oracle://")
    result = pytester.runpytest_subprocess(
        *common, "--eval-output-uri", f"ledger://{ledger}", "--eval-json", "r.json"
    )
    result.assert_outcomes(passed=2)
    assert "results.json" in json.loads((ledger / "ledger.json").read_text())
    assert json.loads((pytester.path / "r.json").read_text())["coin_tosses"] > 0
    result = pytester.runpytest_subprocess(*common, "--eval-output-uri", "nope://x", "--eval-json", "n.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*results cannot be published to 'nope://'; known: *'ledger'*"])
    assert not (pytester.path / "n.json").exists()


def test_a_results_document_hook_that_raises_is_one_line_and_the_files_still_written(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        """
import pytest


@pytest.hookimpl
def pytest_policyeval_results_document(document, results):
    raise KeyError("the plugin's own bug")
"""
    )
    write_suite(pytester.path, MINI_SUITE)
    result = pytester.runpytest_subprocess(
        "-p", "no:importnb", "--policy-uri", "scripted://navigator", "--eval-json", "r.json"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*a pytest_policyeval_results_document hook failed (KeyError: *own bug*)*"])
    document = json.loads((pytester.path / "r.json").read_text())
    assert document["policies"] and document["document_hook_error"].startswith("KeyError")


def test_a_plugin_objects_registration_counts_by_its_code() -> None:
    """A plugin registered as an object has bound methods for hooks: their code is still found."""
    import pluggy

    from pytest_policyeval import registry
    from pytest_policyeval.provenance import registered_code

    class Plugin:
        @pluggy.HookimplMarker("pytest")
        def pytest_policyeval_engines(self) -> dict:
            return {"mine": object()}

    manager = pluggy.PluginManager("pytest")
    registry.add_to(manager)
    manager.register(Plugin())
    previous = registry.use(manager)
    try:
        assert registered_code("pytest_policyeval_engines", "mine") is not None
    finally:
        registry.use(previous)
