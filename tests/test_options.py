"""Options: command line over ini over suite; bad values are usage errors at parse time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch


def _task(path: Path, name: str = "nav/easy") -> dict:
    doc = json.loads(path.read_text())
    return doc["policies"][0]["checkpoints"][0]["metrics"]["tasks"][name]


def test_ini_sets_episodes_seed_and_policy(pytester: pytest.Pytester, mini_suite: Path) -> None:
    pytester.makeini(
        "[pytest]\npolicyeval_num_episodes = 3\npolicyeval_seed = 11\npolicyeval_policy_uris = random://\n"
    )
    pytester.runpytest("-k", "easy", "--eval-json", "ini.json").assert_outcomes(passed=1, deselected=1)
    task = _task(pytester.path / "ini.json")
    assert (task["num_episodes"], task["seed"]) == (3, 11)


def test_command_line_wins_over_ini(pytester: pytest.Pytester, mini_suite: Path) -> None:
    pytester.makeini("[pytest]\npolicyeval_num_episodes = 3\n")
    pytester.runpytest("--policy-uri", "random://", "--num-episodes", "2", "--eval-json", "cli.json")
    assert _task(pytester.path / "cli.json")["num_episodes"] == 2


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--num-episodes", "0"], "--num-episodes: must be at least 1, got 0"),
        (["--eval-seed", "-4"], "--eval-seed: must be 0 or more, got -4"),
        (["--device", "tpu"], "--device: unknown device 'tpu'; use cpu, cuda, cuda:N or mps"),
        (["--eval-gate", "median"], "--eval-gate: must be one of ci, mean, sequential"),
        # An unset variable in --baseline-uri=$BASELINE must not turn the baseline gate off.
        (["--baseline-uri="], "--baseline-uri: is empty (an unset variable?)*"),
        (["--baseline-uri", " "], "--baseline-uri: is empty*"),
        (["--npc-policy-uri="], "--npc-policy-uri: is empty*"),
        (["--eval-output-uri="], "--eval-output-uri: is empty*"),
        (["--policy-uri="], "--policy-uri: is empty*"),
    ],
)
def test_bad_option_values_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], fragment: str
) -> None:
    result = pytester.runpytest("--policy-uri", "random://", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{fragment}*"])


def test_an_empty_uri_given_with_o_is_a_usage_error(pytester: pytest.Pytester, mini_suite: Path) -> None:
    result = pytester.runpytest("--policy-uri", "random://", "-o", "policyeval_baseline_uri=")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*-o policyeval_baseline_uri= is empty (an unset variable?)*"])
    # An empty line in an ini file still means "not set".
    pytester.makeini("[pytest]\npolicyeval_baseline_uri =\n")
    pytester.runpytest("--policy-uri", "random://", "-k", "easy").assert_outcomes(passed=1, deselected=1)


def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester, mini_suite: Path) -> None:
    pytester.makeini("[pytest]\npolicyeval_num_episodes = many\n")
    result = pytester.runpytest("--policy-uri", "random://")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*policyeval_num_episodes = 'many'*"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_a_gpu_fails_with_a_clear_message(pytester: pytest.Pytester, tmp_path: Path) -> None:
    from helpers import MINI_SUITE, make_checkpoint, write_suite

    path = make_checkpoint(tmp_path / "p.pt")
    write_suite(pytester.path, MINI_SUITE)
    result = pytester.runpytest("--policy-uri", str(path), "--device", "cuda", "-k", "easy")
    result.assert_outcomes(failed=1, deselected=1)
    result.stdout.fnmatch_lines(["*--device cuda: torch * sees no CUDA device on this machine*"])


def test_a_run_of_fixed_gates_says_in_the_terminal_that_it_promises_nothing(
    pytester: pytest.Pytester, mini_suite: Path
) -> None:
    result = pytester.runpytest("--policy-uri", "random://", "--eval-gate", "mean")
    result.stdout.fnmatch_lines(
        ["*Suite guarantee: none: *fixed gates (mean, ci), which control no false fail*"]
    )
    result = pytester.runpytest("--policy-uri", "random://", "--eval-gate", "sequential")
    assert "Suite guarantee" not in result.stdout.str()  # the sequential gate's bound is in every file
