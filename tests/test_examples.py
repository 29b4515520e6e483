"""The shipped example checkpoints load by path alone and play their games far better than random."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "policies"


@pytest.mark.parametrize(
    ("checkpoint", "suite", "selection"),
    [
        ("navigation.pt", "navigation.yaml", "in_sight or out_of_sight or wall_with_gap or maze_small"),
        ("laser_tag.pt", "laser_tag.yaml", "skirmish or arena"),
    ],
)
def test_example_checkpoint_passes_where_random_fails(
    pytester: pytest.Pytester, checkpoint: str, suite: str, selection: str
) -> None:
    path = EXAMPLES / checkpoint
    assert path.stat().st_size < 2_000_000
    result = pytester.runpytest(
        str(REPO / "suites" / suite),
        "-k",
        selection,
        f"--policy-uri=pytorch://{path}",
        "--policy-uri=random://",
        "--eval-json=results.json",
        "-p",
        "no:cacheprovider",
    )
    document = json.loads((pytester.path / "results.json").read_text())
    tasks = {
        entry["policy_uri"]: entry["checkpoints"][0]["metrics"]["tasks"] for entry in document["policies"]
    }
    trained, random = tasks[f"pytorch://{path}"], tasks["random://"]
    assert sorted(trained) == sorted(random) and len(trained) >= 2
    for name, scores in trained.items():
        assert scores["passed"], f"{checkpoint} below the threshold on {name}: {scores['score']}"
        assert not random[name]["passed"]
        assert scores["score"] >= 3 * random[name]["score"], name
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == outcomes["failed"] == len(trained)
