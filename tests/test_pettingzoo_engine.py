"""The pettingzoo engine: MPE's cooperative and two-sided tasks (suites/pettingzoo_mpe.yaml) played
as real pytest runs, per-agent scores, mixed episodes against an npc, determinism, and the
allow-list that keeps a suite from importing anything it likes."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from helpers import write_suite

from pytest_policyeval.collection.suite import SuiteError, load_suite
from pytest_policyeval.engines import engine_for
from pytest_policyeval.engines.base import EngineError
from pytest_policyeval.engines.pettingzoo import parallel
from pytest_policyeval.engines.pettingzoo.settings import PettingZooSettings
from pytest_policyeval.policies.base import Actor, Policy
from pytest_policyeval.policies.random_policy import RandomPolicy
from pytest_policyeval.policies.uri import load_policy
from pytest_policyeval.runner import play_episodes
from pytest_policyeval.spec import EnvSpec
from pytest_policyeval.task import Task, TaskSettings

HAVE_MPE2 = find_spec("mpe2") is not None
needs_mpe2 = pytest.mark.skipif(not HAVE_MPE2, reason="pip install 'pytest-policyeval[pettingzoo]'")
if HAVE_MPE2:
    # pytester's in-process runs drop modules first imported inside them, and pygame (which MPE
    # imports) is a native extension that cannot be imported twice: import it out here, once.
    import mpe2.simple_spread_v3
    import mpe2.simple_tag_v3  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "suites" / "pettingzoo_mpe.yaml"
# -k for one task: the ids also hold the policy's label ("mpe/spread[tag]" for scripted-mpe://tag).
ONLY = {"spread": "spread and not tag", "tag": "tag and not spread"}
RUN = ("-p", "no:cacheprovider", "--eval-gate=mean", "--eval-json=r.json")


def one_task(name: str, keys: str) -> str:
    """A suite of one pettingzoo task: `keys` are its YAML flow-mapping entries."""
    return f"name: s\ntasks:\n  - {{name: {name}, engine: pettingzoo, gate: mean, {keys}}}\n"


def shipped_task(name: str) -> Task:
    return next(task for task in load_suite(SUITE).tasks if task.name == name)


def task_metrics(pytester: pytest.Pytester) -> dict[tuple[str, str], dict]:
    document = json.loads((pytester.path / "r.json").read_text())
    return {
        (entry["policy_uri"], task): detail
        for entry in document["policies"]
        for task, detail in entry["checkpoints"][0]["metrics"]["tasks"].items()
    }


class Recording(Policy):
    """Another policy's actions, remembering which rows it was asked to act for."""

    def __init__(self, inner: Policy) -> None:
        self.uri, self.name, self.info, self.inner, self.rows = inner.uri, inner.name, {}, inner, set()

    def actor(self, env: EnvSpec, device: str = "cpu") -> Actor:
        inner, rows = self.inner.actor(env, device), self.rows

        class _Actor(Actor):
            def reset(self, slot_seeds: np.ndarray) -> None:
                inner.reset(slot_seeds)

            def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray:
                rows.update(int(slot) for slot in slots)
                return inner.act(observations, slots, step)

        return _Actor()


@needs_mpe2
def test_cooperative_task_scores_every_agent(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        str(SUITE), "-k", ONLY["spread"], "--policy-uri=random://", "--num-episodes=4", *RUN
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == 1, result.stdout.str()
    detail = task_metrics(pytester)[("random://", "mpe/spread")]
    assert detail["error"] is None
    assert [len(rewards) for rewards in detail["episode_rewards"]] == [3] * 4  # all three agents
    assert detail["episode_steps"] == [25] * 4
    assert detail["episode_scores"] == pytest.approx([np.mean(r) for r in detail["episode_rewards"]])
    assert all(score < 0 for score in detail["episode_scores"])  # MPE spread pays minus distances


@needs_mpe2
def test_mixed_task_scores_only_the_policys_side_which_alternates(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        str(SUITE), "-k", ONLY["tag"], "--policy-uri=scripted-mpe://tag", "--num-episodes=6", *RUN
    )
    assert result.parseoutcomes().get("passed", 0) + result.parseoutcomes().get("failed", 0) == 1
    detail = task_metrics(pytester)[("scripted-mpe://tag", "mpe/tag")]
    rewards = detail["episode_rewards"]
    assert detail["npc_policy_uri"] == "random://"
    assert [len(r) for r in rewards] == [2] * 6  # the policy's two agents of four
    # Even episodes the policy plays the predators (team 0): they share every catch, never lose
    # points. Odd ones it plays the prey, who only lose points (caught, or out of bounds).
    predators, prey = rewards[0::2], rewards[1::2]
    assert all(r[0] == r[1] >= 0 for r in predators) and any(r[0] > 0 for r in predators)
    assert all(x <= 0 for r in prey for x in r) and any(x < 0 for r in prey for x in r)


@needs_mpe2
def test_npc_plays_the_other_side_and_is_not_scored() -> None:
    task = shipped_task("mpe/tag").with_overrides(num_episodes=4)
    policy, npc = Recording(load_policy("scripted-mpe://tag")), Recording(RandomPolicy())
    rollout = play_episodes(task, policy, npc=npc)
    assert [e.policy_agents for e in rollout.episodes] == [[0, 1], [2, 3], [0, 1], [2, 3]]
    mine = {e * 4 + a for e, episode in enumerate(rollout.episodes) for a in episode.policy_agents}
    assert policy.rows == mine
    assert npc.rows == set(range(16)) - mine
    assert all(len(e.rewards) == 2 for e in rollout.episodes)


@needs_mpe2
@pytest.mark.parametrize(
    ("name", "uri"), [("mpe/spread", "scripted-mpe://spread"), ("mpe/tag", "scripted-mpe://tag")]
)
def test_an_episode_plays_the_same_whatever_shares_its_batch(name: str, uri: str) -> None:
    task = shipped_task(name)
    npc = RandomPolicy() if task.settings.npc_policy_uri else None

    def play(indices: list[int]) -> dict[int, tuple]:
        rollout = play_episodes(task, load_policy(uri), npc=npc, indices=indices)
        return {e.index: (e.seed, e.rewards, e.steps, e.policy_agents) for e in rollout.episodes}

    together = play(list(range(6)))
    assert len({tuple(r[1]) for r in together.values()}) > 1  # the episodes do differ
    assert play([4]) == {4: together[4]}
    assert play([5, 1]) == {5: together[5], 1: together[1]}


class LeavingEnv:
    """A parallel environment of two agents: "b" terminates on step 2, everyone is truncated on 4.
    It fails if it is given an action for an agent that has left."""

    possible_agents = ("a", "b")

    def __init__(self) -> None:
        self.agents: list[str] = []
        self.steps = 0

    def _observations(self) -> dict[str, np.ndarray]:
        return {agent: np.array([self.steps, i], dtype=np.float32) for i, agent in enumerate(self.agents)}

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents, self.steps = ["a", "b"], 0
        return self._observations(), {}

    def step(self, actions: dict[str, int]) -> tuple:
        assert set(actions) == set(self.agents), actions
        self.steps += 1
        observations = self._observations()
        rewards = {agent: 1.0 for agent in self.agents}
        terminations = {agent: agent == "b" and self.steps == 2 for agent in self.agents}
        truncations = {agent: self.steps >= 4 for agent in self.agents}
        self.agents = [a for a in self.agents if not (terminations[a] or truncations[a])]
        return observations, rewards, terminations, truncations, {}

    def close(self) -> None:
        pass


def leaving_layout(max_steps: int) -> parallel.Layout:
    from gymnasium import spaces

    spec = parallel.PettingZooSpec(
        engine="pettingzoo",
        num_agents=2,
        max_steps=max_steps,
        observation_space=spaces.Box(0, 10, (2,), np.float32),
        action_space=spaces.Discrete(3),
        agent_names=("a", "b"),
        agent_teams=(0, 0),
    )
    return parallel.Layout(
        spec, LeavingEnv, ("a", "b"), (2,), np.dtype(np.float32), (), np.dtype(np.int64), (0, 3)
    )


@pytest.mark.parametrize("max_steps", [10, 3])
def test_an_agent_that_leaves_keeps_its_last_observation_and_earns_nothing_more(
    monkeypatch: pytest.MonkeyPatch, max_steps: int
) -> None:
    monkeypatch.setattr(parallel, "task_layout", lambda task: leaving_layout(max_steps))
    task = Task(suite="t", name="fake/leaving", settings=TaskSettings(max_steps=max_steps), seed=0)
    batch = parallel.ParallelBatch(task, [7, 8])
    ended: list[int] = []
    for step in range(1, 5):
        if step == 3:
            batch.actions[[1, 3]] = 99  # "b" has left: an action outside the space is never sent
        ended = batch.step([0, 1])
        if step == 2:
            assert batch.rewards.tolist() == [1.0, 1.0, 1.0, 1.0]  # "b" is rewarded for its last step
        if step == 3:
            assert batch.rewards.tolist() == [1.0, 0.0, 1.0, 0.0]
            assert batch.observations[1].tolist() == [2.0, 1.0]  # "b" as it was when it left
            assert batch.observations[0].tolist() == [3.0, 0.0]
        if step == max_steps:
            break
    assert ended == [0, 1]
    assert batch.episode_steps(0) == min(4, max_steps)
    assert batch.episode_rewards(1).tolist() == [min(4, max_steps), 2.0]
    assert batch.replay(0) is None
    batch.close()


EVIL_INIT = "import pathlib\npathlib.Path({marker!r}).write_text('imported')\n"


@pytest.mark.parametrize(
    "env", ["evilpkg.simple_v1", "os.system", "mpe2._mpe_utils.core", "pettingzoo.utils.env_v1"]
)
def test_names_off_the_allow_list_are_refused_and_nothing_is_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str
) -> None:
    marker = tmp_path / "imported.txt"
    package = tmp_path / "evilpkg"
    package.mkdir()
    (package / "__init__.py").write_text(EVIL_INIT.format(marker=str(marker)))
    (package / "simple_v1.py").write_text("def parallel_env(**kwargs):\n    raise SystemExit\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SuiteError, match=r"task 'x/evil' \(tasks\[0\]\): key 'env': .*known family"):
        load_suite(write_suite(tmp_path, one_task("x/evil", f"env: {env}"), maps={}))
    # The engine checks the name again itself, whatever built its settings.
    with pytest.raises(EngineError, match="not an allow-listed environment"):
        parallel.environment_module(PettingZooSettings.model_construct(env=env))
    assert not marker.exists() and "evilpkg" not in sys.modules
    # The package is importable from there: had the engine imported it, the marker would exist.
    subprocess.run([sys.executable, "-c", "import evilpkg.simple_v1"], cwd=tmp_path, check=True)
    assert marker.read_text() == "imported"


def test_a_refused_name_is_a_collection_error_and_nothing_runs(pytester: pytest.Pytester) -> None:
    write_suite(
        pytester.path, "name: s\ntasks:\n  - {name: x/os, engine: pettingzoo, env: os.system}\n", maps={}
    )
    result = pytester.runpytest("--policy-uri", "random://", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*ERROR collecting suites/mini.yaml*", "*invalid suite:*key 'env'*known family*"]
    )
    assert "Traceback" not in result.stdout.str()


BAD_KWARGS = {
    "unknown_argument": ("{Nn: 3}", ["key 'env_kwargs.Nn'", "not an argument of mpe2.simple_spread_v3"]),
    "refused_value": ("{local_ratio: 2.0}", ["key 'env_kwargs'", "local_ratio is a proportion"]),
    "render_mode": ("{render_mode: human}", ["key 'env_kwargs'", "'render_mode' cannot be set"]),
    "max_cycles": ("{max_cycles: 50}", ["key 'env_kwargs'", "set max_steps instead"]),
    "not_a_scalar": ("{N: [1, 2]}", ["key 'env_kwargs'", "'N': must be a string, number, boolean or null"]),
    "not_a_mapping": ("[N, 3]", ["key 'env_kwargs'", "must be a mapping"]),
}


@needs_mpe2
@pytest.mark.parametrize("case", sorted(BAD_KWARGS))
def test_bad_env_kwargs_are_one_short_error_naming_the_key(tmp_path: Path, case: str) -> None:
    kwargs, fragments = BAD_KWARGS[case]
    body = one_task("mpe/x", f"env: mpe2.simple_spread_v3, env_kwargs: {kwargs}")
    suite = write_suite(tmp_path, body, maps={})
    with pytest.raises(SuiteError) as error:
        load_suite(suite)
    message = str(error.value)
    assert message.startswith(f"{suite}: task 'mpe/x' (tasks[0]): ")
    assert "\n" not in message and len(message) < 600
    for fragment in fragments:
        assert fragment in message


def test_env_kwargs_are_hashable_sorted_pairs() -> None:
    settings = PettingZooSettings(env="mpe2.simple_spread_v3", env_kwargs={"local_ratio": 0.5, "N": 4})
    assert settings.env_kwargs == (("N", 4), ("local_ratio", 0.5))
    assert hash(settings) == hash(
        PettingZooSettings(env="mpe2.simple_spread_v3", env_kwargs={"N": 4, "local_ratio": 0.5})
    )


@needs_mpe2
def test_a_missing_package_names_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parallel.layout.cache_clear()
    monkeypatch.setitem(sys.modules, "mpe2", None)  # what an environment without mpe2 sees
    body = one_task("mpe/x", "env: mpe2.simple_spread_v3")
    try:
        with pytest.raises(
            SuiteError,
            match=r"key 'env': .*needs mpe2, not installed \(pip install 'pytest-policyeval\[pettingzoo\]'",
        ):
            load_suite(write_suite(tmp_path, body, maps={}))
    finally:
        parallel.layout.cache_clear()


@pytest.mark.skipif(find_spec("pymunk") is not None, reason="pymunk is installed here")
def test_a_missing_family_dependency_names_the_extra(tmp_path: Path) -> None:
    body = one_task("b/x", "env: pettingzoo.butterfly.pistonball_v6")
    with pytest.raises(
        SuiteError, match=r"needs pymunk, not installed \(pip install 'pettingzoo\[butterfly\]'\)"
    ):
        load_suite(write_suite(tmp_path, body, maps={}))


@needs_mpe2
def test_two_sided_observations_are_padded_only_on_request_and_recorded(tmp_path: Path) -> None:
    body = one_task("mpe/tag", "env: mpe2.simple_tag_v3, env_kwargs: {num_good: 2, num_adversaries: 2}")
    with pytest.raises(SuiteError, match=r"key 'pad_observations': .*observe different spaces"):
        load_suite(write_suite(tmp_path, body, maps={}))
    task = shipped_task("mpe/tag")
    spec = engine_for(task).spec(task)
    assert spec.agent_names == ("adversary_0", "adversary_1", "agent_0", "agent_1")
    assert spec.agent_teams == (0, 0, 1, 1)
    assert spec.observation_sizes == (18, 18, 16, 16)
    assert spec.observation_space.shape == (18,)
    assert [s.shape for s in spec.agent_observation_spaces] == [(18,), (18,), (16,), (16,)]
    batch = engine_for(task).batch(task, [11])
    try:
        batch.actions[:] = 2  # everyone pushes right: prey move, so predators see prey velocities
        batch.step([0])
        assert np.all(batch.observations[2:, 16:] == 0)  # the prey's padding
        assert np.any(batch.observations[:2, 16:] != 0)  # the predators' own last numbers
    finally:
        batch.close()


@needs_mpe2
def test_the_cooperative_spec_is_one_team_of_equal_agents() -> None:
    task = shipped_task("mpe/spread")
    spec = engine_for(task).spec(task)
    assert (spec.engine, spec.env_id, spec.num_agents, spec.max_steps) == (
        "pettingzoo",
        "mpe2.simple_spread_v3",
        3,
        25,
    )
    assert spec.agent_teams == (0, 0, 0) and spec.observation_sizes == ()
    assert spec.observation_space.shape == (18,) and int(spec.action_space.n) == 5
    assert engine_for(task).score_range(task) is None


def test_importing_the_engine_imports_no_environment() -> None:
    code = (
        "import sys\n"
        "import pytest_policyeval.engines.pettingzoo.hooks, pytest_policyeval.engines.pettingzoo.engine\n"
        "import pytest_policyeval.engines.pettingzoo.scripted\n"
        "print(sorted(m for m in ('pettingzoo', 'mpe2', 'pygame', 'gymnasium') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@needs_mpe2
@pytest.mark.parametrize(
    ("task", "reference"), [("spread", "scripted-mpe://spread"), ("tag", "scripted-mpe://tag")]
)
def test_the_reference_passes_where_random_fails(
    pytester: pytest.Pytester, task: str, reference: str
) -> None:
    result = pytester.runpytest(
        str(SUITE), "-k", ONLY[task], "--policy-uri=random://", f"--policy-uri={reference}", *RUN
    )
    metrics = task_metrics(pytester)
    assert metrics[("random://", f"mpe/{task}")]["passed"] is False
    assert metrics[(reference, f"mpe/{task}")]["passed"] is True
    assert metrics[(reference, f"mpe/{task}")]["num_episodes"] == 50
    result.assert_outcomes(passed=1, failed=1)
