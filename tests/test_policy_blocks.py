"""A row's network output is the same whatever batch it shares (policies/blocks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import make_checkpoint, write_suite

from pytest_policyeval.collection.suite import load_suite
from pytest_policyeval.policies import load_policy
from pytest_policyeval.policies.blocks import ROWS, in_fixed_blocks
from pytest_policyeval.runner import play_episodes

REPO = Path(__file__).resolve().parents[1]


def _rows_alone_and_in(fn, x: torch.Tensor) -> list[bool]:
    """Per batch size n: does row 0 of fn(x[:n]) equal fn(x[:1])'s row 0 bit for bit?"""
    alone = fn(x[:1])[0]
    return [torch.equal(fn(x[:n])[0], alone) for n in range(1, x.shape[0] + 1)]


def test_a_rows_result_does_not_depend_on_the_batch() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Tanh(), torch.nn.Linear(64, 8))
    x = torch.randn(3 * ROWS + 5, 64)
    with torch.inference_mode():
        assert not all(_rows_alone_and_in(net, x))  # the premise: a plain product's bits move
        assert all(_rows_alone_and_in(lambda rows: in_fixed_blocks(net, rows), x))
        # Wherever the row sits among others, and whatever they hold.
        shuffled = torch.cat((torch.randn(ROWS + 3, 64), x[:1]))
        assert torch.equal(in_fixed_blocks(net, shuffled)[-1], in_fixed_blocks(net, x[:1])[0])
        # The blocks' results are the plain ones up to rounding, rows in order.
        assert torch.allclose(in_fixed_blocks(net, x), net(x), atol=1e-5)


def test_several_inputs_and_nested_results_are_joined_in_order() -> None:
    a, b = torch.arange(70.0).view(70, 1), torch.arange(70, dtype=torch.int64)

    def fn(x: torch.Tensor, y: torch.Tensor):
        assert x.shape[0] == ROWS  # every call gets exactly ROWS rows
        return [x * 2, (y + 1, x.sum(1))], x[:, 0]

    (doubled, (plus, sums)), first = in_fixed_blocks(fn, a, b)
    assert torch.equal(doubled, a * 2) and torch.equal(plus, b + 1) and torch.equal(first, a[:, 0])
    assert sums.shape == (70,)
    empty = in_fixed_blocks(lambda x: x + 1, torch.zeros(0, 3))
    assert empty.shape == (0, 3)


COIN = "#############\n#_.........@#\n#############"  # a walk of several steps
SUITE = """
name: blocks
seed: 3
defaults: {num_episodes: 1, max_steps: 30}
tasks:
  - {name: nav/coin, map: maps/coin.map}
"""


def _logits_of_episode_zero(monkeypatch, module: str, task, policy, episodes: int) -> list[torch.Tensor]:
    """The logits the actor sampled episode 0's actions from, step by step (slot 0)."""
    seen: list[torch.Tensor] = []
    from pytest_policyeval.policies.sampling import check_finite as original

    def spy(values, uri, step, slots):
        if 0 in slots:  # episode 0 may have ended while others play on
            seen.append(values[list(slots).index(0)].clone())
        return original(values, uri, step, slots)

    monkeypatch.setattr(f"{module}.check_finite", spy)
    play_episodes(task.with_overrides(num_episodes=episodes), policy)
    return seen


@pytest.mark.parametrize(
    ("uri", "module"),
    [
        (
            "pytorch://" + str(REPO / "examples/policies/navigation.pt"),
            "pytest_policyeval.policies.metta.policy",
        ),
        ("checkpoint", "pytest_policyeval.policies.torch_policy"),
    ],
)
def test_an_episodes_logits_are_the_same_alone_and_among_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uri: str, module: str
) -> None:
    # Sampled discrete actions hide a last-bit change until two perturbed logits nearly tie:
    # the logits themselves must not change, or a replay played alone could differ now and then.
    (task,) = load_suite(write_suite(tmp_path, SUITE, maps={"coin": COIN})).tasks
    if uri == "checkpoint":
        uri = str(make_checkpoint(tmp_path / "p.pt", COIN))
    policy = load_policy(uri)
    alone = _logits_of_episode_zero(monkeypatch, module, task, policy, 1)
    among = _logits_of_episode_zero(monkeypatch, module, task, policy, 9)
    assert len(alone) == len(among) > 5
    assert all(torch.equal(a, b) for a, b in zip(alone, among, strict=True))
    # The premise: computed in one call per batch, they would differ.
    monkeypatch.setattr(f"{module}.in_fixed_blocks", lambda fn, *inputs: fn(*inputs))
    plain_alone = _logits_of_episode_zero(monkeypatch, module, task, policy, 1)
    plain_among = _logits_of_episode_zero(monkeypatch, module, task, policy, 9)
    assert not all(torch.equal(a, b) for a, b in zip(plain_alone, plain_among, strict=True))
