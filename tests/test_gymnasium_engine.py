"""The gymnasium engine: registered ids played in lockstep, exactly as a plain reset/step loop plays them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from helpers import task_details, write_suite

from pytest_policyeval.collection.suite import SuiteError, load_suite
from pytest_policyeval.engines import engine_for

# Imported here, in the outer process, so pytester's in-process runs share these modules (and their caches).
from pytest_policyeval.engines.gymnasium.batch import GymnasiumBatch
from pytest_policyeval.engines.gymnasium.engine import GymnasiumEngine
from pytest_policyeval.engines.gymnasium.settings import GymnasiumSettings
from pytest_policyeval.policies.random_policy import RandomPolicy
from pytest_policyeval.registry import engine as registered_engine
from pytest_policyeval.runner import play_episodes
from pytest_policyeval.seeding import episode_seed, slot_seeds

REPO = Path(__file__).resolve().parents[1]
SUITE = """
name: gym
seed: 5
defaults: {engine: gymnasium, num_episodes: 8, gate: mean}
tasks:
  - {name: classic/cartpole, env: CartPole-v1, max_steps: 500, threshold: 10}
  - {name: classic/pendulum, env: Pendulum-v1, max_steps: 200, threshold: -200}
  - {name: classic/pendulum_short, env: Pendulum-v1, max_steps: 30, env_kwargs: {g: 9.81}}
  - {name: classic/mcc, env: MountainCarContinuous-v0, max_steps: 20}
  - {name: toy/frozen_lake, env: FrozenLake-v1, max_steps: 100, env_kwargs: {is_slippery: false}}
"""


@pytest.fixture
def tasks(tmp_path: Path) -> dict:
    return {task.short_name: task for task in load_suite(write_suite(tmp_path, SUITE, maps={})).tasks}


def plain_loop(env_id: str, seed: int, actions, max_steps: int, **kwargs) -> tuple[float, int]:
    """What a user's own evaluation loop gets: reset with the seed, step until done, sum rewards."""
    env = gymnasium.make(env_id, **kwargs)
    observation, _ = env.reset(seed=seed)
    total, steps = 0.0, 0
    try:
        while steps < max_steps:
            _, reward, terminated, truncated, _ = env.step(actions(observation, steps))
            total += float(reward)
            steps += 1
            if terminated or truncated:
                break
    finally:
        env.close()
    return total, steps


def random_actions(task, seed: int):
    """random://'s actions for a lone episode with this seed, one step at a time."""
    actor = RandomPolicy().actor(engine_for(task).spec(task))
    actor.reset(slot_seeds([seed], 1))
    return lambda observation, step: actor.act(np.asarray([observation]), np.array([0]), step)[0]


def test_the_shipped_suite_plays_each_env_to_its_own_limit_and_random_stays_below_every_bar() -> None:
    suite = load_suite(REPO / "suites" / "gymnasium_classic.yaml")
    assert {task.env.env for task in suite.tasks} >= {
        "CartPole-v1",
        "Acrobot-v1",
        "MountainCar-v0",
        "Pendulum-v1",
    }
    for task in suite.tasks:
        assert task.engine == "gymnasium" and task.settings.threshold is not None
        assert task.settings.max_steps == gymnasium.registry[task.env.env].max_episode_steps
        task = task.with_overrides(num_episodes=4)
        scores = [e.score for e in play_episodes(task, RandomPolicy()).episodes]
        assert max(scores) < task.settings.threshold, task.name


def test_the_engine_is_registered_and_importing_it_stays_light() -> None:
    assert registered_engine("gymnasium") is GymnasiumEngine
    code = (
        "import sys, pytest_policyeval.engines.gymnasium.hooks, pytest_policyeval.engines.gymnasium.engine\n"
        "print('gymnasium' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_gymnasium_suite_runs_as_pytest_tests(pytester: pytest.Pytester) -> None:
    body = SUITE.replace("num_episodes: 8", "num_episodes: 3")
    write_suite(pytester.path, body, maps={})
    result = pytester.runpytest(
        "--policy-uri", "random://", "--eval-json", "out.json", "-k", "cartpole or pendulum"
    )
    # random:// keeps CartPole up for more than 10 steps, but never swings Pendulum up.
    result.assert_outcomes(passed=2, failed=1, deselected=2)
    details = task_details(pytester.path / "out.json")
    cartpole = details[("classic/cartpole", "random")]
    assert cartpole["passed"] is True and len(cartpole["episode_scores"]) == 3
    assert all(steps < 500 for steps in cartpole["episode_steps"])  # the pole falls: terminated
    assert details[("classic/pendulum", "random")]["episode_steps"] == [200] * 3  # the env's TimeLimit
    assert details[("classic/pendulum_short", "random")]["episode_steps"] == [30] * 3  # the task's max_steps


@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_an_episode_plays_the_same_alone_in_a_batch_and_in_a_plain_loop(tasks: dict, name: str) -> None:
    task = tasks[name]
    together = play_episodes(task, RandomPolicy()).episodes
    alone = [play_episodes(task, RandomPolicy(), indices=[i]).episodes[0] for i in (0, 5, 7)]
    for episode in alone:
        same = together[episode.index]
        assert (episode.rewards, episode.steps) == (same.rewards, same.steps)
    assert len({e.rewards[0] for e in together}) > 1  # the seeds differ, so do the episodes
    for episode in together:
        seed = episode_seed(task.seed, task.name, episode.index)
        assert episode.seed == seed
        total, steps = plain_loop(task.env.env, seed, random_actions(task, seed), task.settings.max_steps)
        assert episode.rewards == [total]  # exactly: the same float64 sum of the same rewards
        assert episode.steps == steps


def test_a_batch_steps_only_the_episodes_it_is_given(tasks: dict) -> None:
    task = tasks["cartpole"]
    batch = GymnasiumBatch(task, [11, 12, 13])
    try:
        assert batch.observations.shape == (3, 4) and batch.actions.shape == (3,)
        first = batch.observations.copy()
        batch.actions[:] = [0, 1, 0]
        assert batch.step([1]) == []
        assert np.array_equal(batch.observations[[0, 2]], first[[0, 2]])
        assert not np.array_equal(batch.observations[1], first[1])
        assert [batch.episode_steps(e) for e in range(3)] == [0, 1, 0]
        assert batch.episode_rewards(1).tolist() == [1.0] and batch.rewards.tolist() == [0.0, 1.0, 0.0]
        assert batch.replay(1) is None
    finally:
        batch.close()


def test_pendulum_takes_continuous_actions(tasks: dict) -> None:
    task = tasks["pendulum"]
    spec = engine_for(task).spec(task)
    assert type(spec.action_space).__name__ == "Box" and spec.action_space.shape == (1,)
    assert (spec.num_agents, spec.env_id, spec.engine) == (1, "Pendulum-v1", "gymnasium")
    low, high = engine_for(task).score_range(task)
    assert high == 0.0
    episodes = play_episodes(task, RandomPolicy()).episodes
    assert all(low <= e.rewards[0] < 0 and e.steps == 200 for e in episodes)
    # A torque beyond the space is clipped to it (as Stable-Baselines3's predict does): 5 plays as 2.
    seed = episode_seed(task.seed, task.name, 0)
    batch = GymnasiumBatch(task, [seed, seed])
    try:
        assert batch.actions.dtype == np.float32
        for _ in range(50):
            batch.actions[:] = [[5.0], [2.0]]
            batch.step([0, 1])
        assert batch.episode_rewards(0).tolist() == batch.episode_rewards(1).tolist()
        full_torque = plain_loop("Pendulum-v1", seed, lambda observation, step: np.float32([2.0]), 50)
        assert batch.episode_rewards(0)[0] == full_torque[0]
        batch.actions[0] = [np.nan]
        with pytest.raises(ValueError, match="not finite"):
            batch.step([0])
    finally:
        batch.close()


def test_the_rules_bound_mountain_car_continuous_for_actions_beyond_the_space(tasks: dict) -> None:
    task = tasks["mcc"]
    low, high = engine_for(task).score_range(task)
    assert (round(low, 6), high) == (-2.0, 100.0)  # -0.1 a^2 a step for 20 steps, +100 at the goal
    batch = GymnasiumBatch(task, [3])
    try:
        ended = []
        while not ended:
            batch.actions[:] = [[-7.0]]  # charged as -1 (clipped), else -4.9 a step
            ended = batch.step([0])
        assert batch.episode_steps(0) == 20
        assert low <= batch.episode_rewards(0)[0] == pytest.approx(-2.0)
    finally:
        batch.close()


def test_discrete_observations_are_an_int_array(tasks: dict) -> None:
    task = tasks["frozen_lake"]
    batch = GymnasiumBatch(task, [1, 2])
    try:
        assert batch.observations.shape == (2,) and batch.observations.dtype == np.int64
        assert batch.observations.tolist() == [0, 0]  # the start cell
        batch.actions[:] = [2, 1]  # right, down on the not-slippery lake
        batch.step([0, 1])
        assert batch.observations.tolist() == [1, 4]
        batch.actions[:] = [9, 0]
        with pytest.raises(ValueError, match="outside the action space"):
            batch.step([0])
    finally:
        batch.close()


def test_score_ranges_follow_the_rules_and_the_shorter_time_limit(tmp_path: Path) -> None:
    body = """
    name: r
    defaults: {engine: gymnasium}
    tasks:
      - {name: c/long, env: CartPole-v1, max_steps: 5000}
      - {name: c/short, env: CartPole-v1, max_steps: 100}
      - {name: c/v0, env: CartPole-v0, max_steps: 5000}
      - {name: c/sutton, env: CartPole-v1, env_kwargs: {sutton_barto_reward: true}}
      - {name: c/acrobot, env: Acrobot-v1, max_steps: 500}
      - {name: c/car, env: MountainCar-v0, max_steps: 1000}
      - {name: c/pendulum, env: Pendulum-v1, max_steps: 200}
      - {name: c/lake, env: FrozenLake-v1}
    """
    ranges = {
        task.short_name: engine_for(task).score_range(task)
        for task in load_suite(write_suite(tmp_path, body, maps={})).tasks
    }
    assert ranges["long"] == (0.0, 500.0)  # CartPole-v1's own TimeLimit ends every episode by 500
    assert ranges["short"] == (0.0, 100.0)
    assert ranges["v0"] == (0.0, 200.0)
    assert ranges["sutton"] == (-1.0, 0.0)
    assert ranges["acrobot"] == (-500.0, 0.0) and ranges["car"] == (-200.0, 0.0)
    low, high = ranges["pendulum"]
    worst = -(np.pi**2 + 0.1 * 8**2 + 0.001 * 2**2) * 200  # pendulum.py's worst step, 200 times
    assert high == 0.0 and worst - 1e-3 < low <= worst
    assert ranges["lake"] is None


def test_a_sequential_gate_uses_cartpoles_known_range(pytester: pytest.Pytester) -> None:
    body = """
    name: seq
    defaults: {engine: gymnasium, env: CartPole-v1, max_steps: 500, num_episodes: 10}
    tasks:
      - {name: cp/low_bar, threshold: 10, margin: 5}
      - {name: cp/solved, threshold: 475}
    """
    write_suite(pytester.path, body, maps={})
    result = pytester.runpytest("--policy-uri", "random://", "--eval-json", "out.json")
    result.assert_outcomes(passed=1, failed=1)
    details = task_details(pytester.path / "out.json")
    for name, outcome in (("cp/low_bar", "pass"), ("cp/solved", "fail")):
        detail = details[(name, "random")]
        assert detail["gate"] == "sequential" and detail["outcome"] == outcome
        assert (detail["design"]["low"], detail["design"]["high"]) == (0.0, 500.0)


def test_a_sequential_gate_without_a_known_range_asks_for_one(tmp_path: Path) -> None:
    body = "name: s\ntasks:\n  - {name: toy/lake, engine: gymnasium, env: FrozenLake-v1, threshold: 0.5}\n"
    with pytest.raises(SuiteError, match=r"key 'score_range'.*declare score_range") as error:
        load_suite(write_suite(tmp_path, body, maps={}))
    assert "toy/lake" in str(error.value)
    declared = body.replace("threshold: 0.5", "threshold: 0.5, score_range: [0, 1]")
    (task,) = load_suite(write_suite(tmp_path, declared, maps={})).tasks
    assert task.settings.score_range == (0.0, 1.0)


TRAP = """
from pathlib import Path
Path(__file__).with_name("IMPORTED").write_text("a suite made this module run")
import gymnasium
gymnasium.register(id="Trap-v0", entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv")
"""


def test_an_id_naming_a_module_is_refused_and_the_module_never_imported(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    (pytester.path / "suite_trap.py").write_text(TRAP)
    monkeypatch.syspath_prepend(str(pytester.path))
    marker = pytester.path / "IMPORTED"
    body = "name: s\ntasks:\n  - {name: t/trap, engine: gymnasium, env: 'suite_trap:Trap-v0'}\n"
    suite = write_suite(pytester.path, body, maps={})
    with pytest.raises(SuiteError, match=r"key 'env'.*'module:Env' import a module"):
        load_suite(suite)
    result = pytester.runpytest("--policy-uri", "random://")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*invalid suite:*key 'env'*import a module*"])
    assert not marker.exists() and "suite_trap" not in sys.modules
    # The trap is real: gymnasium itself would have imported it for that id.
    try:
        gymnasium.make("suite_trap:Trap-v0").close()
        assert marker.exists()
    finally:
        sys.modules.pop("suite_trap", None)
        gymnasium.registry.pop("Trap-v0", None)


def _missing_box2d(**kwargs):
    raise gymnasium.error.DependencyNotInstalled('Box2D is missing: `pip install "gymnasium[box2d]"`')


def _missing_module(**kwargs):
    raise ModuleNotFoundError("No module named 'jaxlike'", name="jaxlike")


BAD = {
    "misspelt_id": (
        "env: CartPol-v1",
        ["key 'env'", "unknown gymnasium environment 'CartPol-v1'", "CartPole-v1"],
    ),
    "unversioned_id": ("env: CartPole", ["key 'env'", "environment 'CartPole'", "did you mean"]),
    "unknown_kwarg": (
        "env: CartPole-v1, env_kwargs: {gravity_well: 3}",
        ["key 'env_kwargs'", "does not accept", "gravity_well"],
    ),
    "render_mode": ("env: CartPole-v1, env_kwargs: {render_mode: human}", ["key 'env_kwargs'", "rendering"]),
    "time_limit": ("env: CartPole-v1, env_kwargs: {max_episode_steps: 9}", ["key 'env_kwargs'", "max_steps"]),
    "nested_value": ("env: Pendulum-v1, env_kwargs: {g: [[1]]}", ["key 'env_kwargs'", "'g'", "lists of"]),
    "infinite_value": ("env: Pendulum-v1, env_kwargs: {g: .inf}", ["key 'env_kwargs'", "finite"]),
    "not_a_mapping": ("env: Pendulum-v1, env_kwargs: 3", ["key 'env_kwargs'", "mapping"]),
    "unknown_key": ("env: Pendulum-v1, gravity: 3", ["unknown key 'gravity'"]),
    "tuple_observations": ("env: Blackjack-v1", ["key 'env'", "observation space", "Tuple"]),
    "missing_box2d": ("env: PolicyevalTest/Box2d-v0", ["key 'env'", "not installed", "[box2d]"]),
    "missing_module": ("env: PolicyevalTest/Module-v0", ["key 'env'", "'jaxlike'", "pip install jaxlike"]),
}


@pytest.fixture
def missing_dependencies():
    """Registered ids whose environments need something not installed (entry points are callables)."""
    gymnasium.register(id="PolicyevalTest/Box2d-v0", entry_point=_missing_box2d)
    gymnasium.register(id="PolicyevalTest/Module-v0", entry_point=_missing_module)
    yield
    for env_id in ("PolicyevalTest/Box2d-v0", "PolicyevalTest/Module-v0"):
        gymnasium.registry.pop(env_id, None)


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.usefixtures("missing_dependencies")
def test_a_bad_task_is_one_short_error_naming_the_key(tmp_path: Path, case: str) -> None:
    task, fragments = BAD[case]
    body = f"name: s\ntasks:\n  - {{name: g/bad, engine: gymnasium, {task}}}\n"
    suite = write_suite(tmp_path, body, maps={})
    with pytest.raises(SuiteError) as error:
        load_suite(suite)
    message = str(error.value)
    assert message.startswith(f"{suite}: task 'g/bad' (tasks[0]): ")
    assert "\n" not in message and len(message) < 500
    for fragment in fragments:
        assert fragment in message


def test_env_kwargs_are_hashable_and_do_not_depend_on_order() -> None:
    a = GymnasiumSettings(env="FrozenLake-v1", env_kwargs={"map_name": "8x8", "is_slippery": False})
    b = GymnasiumSettings(env="FrozenLake-v1", env_kwargs={"is_slippery": False, "map_name": "8x8"})
    assert a == b and hash(a) == hash(b)
    assert a.env_kwargs == (("is_slippery", False), ("map_name", "8x8"))
    dumped = a.model_dump(mode="json")
    assert dumped == {"env": "FrozenLake-v1", "env_kwargs": [["is_slippery", False], ["map_name", "8x8"]]}
    assert GymnasiumSettings.model_validate(json.loads(json.dumps(dumped))) == a
    lake = GymnasiumSettings(env="FrozenLake-v1", env_kwargs={"desc": ["SF", "HG"]})
    assert lake.kwargs == {"desc": ["SF", "HG"]} and hash(lake)
