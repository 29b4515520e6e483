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
    assert (
        "results NOT published: ftp://host/x: results cannot be published to 'ftp://'; "
        "known: ['file', 'ledger', 's3', 'wandb']"
    ) in result.stdout.str()
