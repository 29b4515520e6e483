"""Extending pytest-policyeval from a conftest.py: an engine, a policy scheme, a gate and a sink.

Each is one hook implementation returning {name: thing}; nothing in the package is edited. Run
the suite beside this file with

    pytest suites/coin.yaml --policy-uri oracle:// --eval-output-uri ledger://results

The README's "Extending" section walks through each part.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field

from pytest_policyeval.engines.base import EngineBase
from pytest_policyeval.gates.design import GateDesign
from pytest_policyeval.gates.sequential import Decision
from pytest_policyeval.policies.base import Actor, Policy
from pytest_policyeval.spec import EnvSpec
from pytest_policyeval.task import Task

# -- an engine: "coin", guess each step's coin; one point per right guess ---------------------------


class CoinSettings(BaseModel):
    """The task keys this engine owns (a suite's other keys are the plugin's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    bias: float = Field(default=0.5, ge=0, le=1)  # chance that a coin shows heads


class CoinBatch:
    """Episodes in lockstep: row e is episode e; the observation is the coin's last outcome."""

    def __init__(self, spec: EnvSpec, settings: CoinSettings, seeds: list[int]) -> None:
        self.spec, self._bias = spec, settings.bias
        self._rngs = [np.random.default_rng(seed) for seed in seeds]
        self.observations = np.zeros((len(seeds), 1), dtype=np.float32)
        self.actions = np.zeros(len(seeds), dtype=np.int64)
        self.rewards = np.zeros(len(seeds))
        self._totals, self._steps = np.zeros(len(seeds)), [0] * len(seeds)

    def step(self, episodes: list[int]) -> list[int]:
        ended = []
        for e in episodes:
            heads = int(self._rngs[e].random() < self._bias)
            self.rewards[e] = float(self.actions[e] == heads)
            self._totals[e] += self.rewards[e]
            self.observations[e, 0] = heads
            self._steps[e] += 1
            if self._steps[e] >= self.spec.max_steps:
                ended.append(e)
        return ended

    def episode_rewards(self, episode: int) -> np.ndarray:
        return self._totals[episode : episode + 1]

    def episode_steps(self, episode: int) -> int:
        return self._steps[episode]

    def replay(self, episode: int) -> None:
        return None

    def close(self) -> None:
        self._rngs.clear()


class CoinEngine(EngineBase):
    name = "coin"
    settings_model = CoinSettings

    def spec(self, task: Task) -> EnvSpec:
        return EnvSpec(
            engine="coin",
            num_agents=1,
            max_steps=task.settings.max_steps,
            observation_space=spaces.Box(0, 1, (1,), np.float32),
            action_space=spaces.Discrete(2),
        )

    def batch(self, task: Task, seeds: Sequence[int], record: Sequence[int] = ()) -> CoinBatch:
        return CoinBatch(self.spec(task), task.env, list(seeds))

    def score_range(self, task: Task) -> tuple[float, float]:
        return (0.0, float(task.settings.max_steps))  # the bound a sequential gate relies on


@pytest.hookimpl
def pytest_policyeval_engines() -> dict:
    return {"coin": CoinEngine()}


# -- a policy scheme: oracle:// always guesses heads ------------------------------------------------


class HeadsActor(Actor):
    def reset(self, slot_seeds: np.ndarray) -> None:
        pass

    def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray:
        return np.ones(len(slots), dtype=np.int64)  # one call for every live episode


class Oracle(Policy):
    def __init__(self, uri: str):
        self.uri, self.name, self.info = uri, "oracle", {"kind": "oracle"}

    def actor(self, env: EnvSpec, device: str = "cpu") -> Actor:
        return HeadsActor()


@pytest.hookimpl
def pytest_policyeval_policy_schemes() -> dict:
    return {"oracle": lambda uri, rest, options: Oracle(uri)}


# -- a gate: "median", the median episode against the threshold (no error guarantee) -------------------


class MedianGate:
    sequential = False  # judged once, on num_episodes episodes
    needs_range = False
    guarantee = "no error guarantee: the median episode against the threshold"

    def decide(self, design: GateDesign, scores: np.ndarray, trace: bool = False) -> Decision:
        median = float(np.median(scores))
        passed = median >= design.threshold if design.higher_is_better else median <= design.threshold
        return Decision(
            outcome="pass" if passed else "fail",
            episodes=len(scores),
            estimate=median,
            low=float(np.min(scores)),
            high=float(np.max(scores)),
            evidence_pass=None,
            evidence_fail=None,
            reason=f"median {median:g} against threshold {design.threshold:g}",
            interval_method="range of the episodes",
            interval_level="all",
        )


@pytest.hookimpl
def pytest_policyeval_gates() -> dict:
    return {"median": MedianGate()}


# -- a sink: ledger://FOLDER, every published file listed in FOLDER/ledger.json ---------------------


class LedgerSink:
    def __init__(self, uri: str, run: object = None):
        self.root = Path(uri.removeprefix("ledger://"))
        self.entries: dict[str, int] = {}

    def url(self, name: str) -> str:
        return f"ledger://{self.root}/{name}"

    def put(self, name: str, data: bytes | Path) -> None:
        body = data.read_bytes() if isinstance(data, Path) else data
        (self.root / name).parent.mkdir(parents=True, exist_ok=True)
        (self.root / name).write_bytes(body)
        self.entries[name] = len(body)

    def close(self) -> None:
        (self.root / "ledger.json").write_text(json.dumps(self.entries, sort_keys=True))


@pytest.hookimpl
def pytest_policyeval_sinks() -> dict:
    return {"ledger": LedgerSink}


# -- the results document: a key of our own beside the evaluator's --------------------------------


@pytest.hookimpl
def pytest_policyeval_results_document(document: dict, results: list) -> None:
    document["coin_tosses"] = sum(sum(r.episode_steps) for r in results if r.task.startswith("coin/"))
