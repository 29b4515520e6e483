"""Runner benchmark: the same task and policy evaluated three ways, in agent-steps per second.

  (a) this project's batched runner (`play_episodes`): all episodes in lockstep, one policy call a step;
  (b) mettagrid's own `run_multi_episode_rollout`: episodes one after another, one call per agent;
  (c) the engine stepping alone with precomputed actions (no policy), over the same episodes;
  plus (d) the batched policy calls alone, on observations of the same shape.

Targets: (a) at least 10x (b); (a)'s time within 1.3x of (c) + (d).

    python benchmarks/bench_runner.py [--task navigation/maze_medium] [--episodes 32]

The policy is a randomly initialised `token_cnn_lstm` checkpoint (speed, not skill, is measured);
it rarely reaches a goal, so episodes run their full `max_steps` in every variant.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mettagrid.policy.policy import AgentPolicy, MultiAgentPolicy  # noqa: E402
from mettagrid.policy.policy_spec import PolicySpec  # noqa: E402
from mettagrid.runner.rollout import run_multi_episode_rollout  # noqa: E402
from mettagrid.simulator import Action  # noqa: E402

from pytest_policyeval.collection.suite import load_suite  # noqa: E402
from pytest_policyeval.engines.mettagrid.simulation import EpisodeBatch, build_config, task_env_spec  # noqa: E402
from pytest_policyeval.policies import load_policy  # noqa: E402
from pytest_policyeval.policies.checkpoint import Checkpoint, save_checkpoint  # noqa: E402
from pytest_policyeval.policies.networks import build_network  # noqa: E402
from pytest_policyeval.runner import play_episodes  # noqa: E402
from pytest_policyeval.seeding import episode_seed, slot_seeds  # noqa: E402
from pytest_policyeval.task import Task  # noqa: E402


def make_checkpoint(task: Task, path: Path) -> Path:
    spec = task_env_spec(task)
    features = [name for name in spec.feature_names if name and name != "tag"]
    config = {
        "num_features": len(features),
        "num_tags": len(spec.tag_names),
        "num_actions": len(spec.action_names),
        "window": spec.obs_height,
    }
    torch.manual_seed(0)
    network = build_network("token_cnn_lstm", config)
    return save_checkpoint(
        Checkpoint(
            "token_cnn_lstm",
            config,
            features,
            list(spec.tag_names),
            list(spec.action_names),
            network.state_dict(),
        ),
        path,
    )


class BaselineAgent(AgentPolicy):
    """The same network and sampling, called once per agent per step, as mettagrid's runner does."""

    def __init__(self, env_info, actor, action_names: list[str], num_tokens: int, seed: int):
        super().__init__(env_info)
        self._actor, self._names, self._num_tokens, self._seed = actor, action_names, num_tokens, seed
        self.reset()

    def reset(self, simulation=None) -> None:
        self._actor.reset(np.array([self._seed], dtype=np.uint64))
        self._step = 0

    def step(self, obs) -> Action:
        tokens = np.full((1, self._num_tokens, 3), 255, dtype=np.uint8)
        raw = [token.raw_token for token in obs.tokens]
        if raw:
            tokens[0, : len(raw)] = np.asarray(raw, dtype=np.uint8)
        action = int(self._actor.act(tokens, np.zeros(1, dtype=np.int64), self._step)[0])
        self._step += 1
        return Action(name=self._names[action])


class BaselinePolicy(MultiAgentPolicy):
    """A mettagrid MultiAgentPolicy over a pytest-policyeval checkpoint (loaded by `data_path`)."""

    def __init__(self, policy_env_info, device: str = "cpu", **kwargs):
        super().__init__(policy_env_info, device=device)
        self._env_info = policy_env_info

    def load_policy_data(self, policy_data_path: str) -> None:
        self._policy = load_policy(policy_data_path)

    def agent_policy(self, agent_id: int) -> AgentPolicy:
        spec = BaselinePolicy.spec
        actor = self._policy.actor(spec)
        return BaselineAgent(self._env_info, actor, list(spec.action_names), spec.num_tokens, agent_id)


def bench_runner(task: Task, uri: str) -> tuple[float, int, float]:
    policy = load_policy(uri)
    play_episodes(task.with_overrides(num_episodes=2), policy)  # warm up torch and the engine
    rollout = play_episodes(task, policy)
    return rollout.wall_time_s, rollout.agent_steps, rollout.policy_time_s


def bench_mettagrid(task: Task, ckpt: Path, episodes: int) -> tuple[float, int]:
    # One agent a call, as mettagrid's runner makes them: the network on that one row, not padded
    # to the fixed block the batched runner computes in (policies/blocks.py).
    import pytest_policyeval.policies.torch_policy as torch_policy

    blocked, torch_policy.in_fixed_blocks = torch_policy.in_fixed_blocks, lambda fn, *inputs: fn(*inputs)
    try:
        return _bench_mettagrid(task, ckpt, episodes)
    finally:
        torch_policy.in_fixed_blocks = blocked


def _bench_mettagrid(task: Task, ckpt: Path, episodes: int) -> tuple[float, int]:
    config = build_config(task)
    BaselinePolicy.spec = task_env_spec(task)
    spec = PolicySpec(class_path=f"{__name__}.BaselinePolicy", data_path=str(ckpt))
    start = time.perf_counter()
    result, _ = run_multi_episode_rollout(
        policy_specs=[spec],
        assignments=[0] * config.game.num_agents,
        env_cfg=config,
        episodes=episodes,
        seed=0,
        max_action_time_ms=60_000,
    )
    elapsed = time.perf_counter() - start
    steps = sum(episode.steps * config.game.num_agents for episode in result.episodes)
    return elapsed, steps


def bench_engine_alone(task: Task) -> tuple[float, int]:
    n = task.settings.num_episodes
    seeds = [episode_seed(task.seed, task.name, i) for i in range(n)]
    start = time.perf_counter()
    batch = EpisodeBatch(task, seeds)
    rng = np.random.default_rng(0)
    actions = rng.integers(
        0, len(batch.spec.action_names), size=(task.settings.max_steps, len(batch.actions))
    )
    live, agent_steps, step = list(range(n)), 0, 0
    agents = batch.spec.num_agents
    while live:
        rows = (np.asarray(live)[:, None] * agents + np.arange(agents)).ravel()
        batch.actions[rows] = actions[step, rows]
        agent_steps += len(rows)
        ended = set(batch.step(live))
        live = [e for e in live if e not in ended]
        step += 1
    batch.close()
    return time.perf_counter() - start, agent_steps


def bench_policy_alone(task: Task, uri: str, steps: int) -> float:
    n = task.settings.num_episodes
    seeds = [episode_seed(task.seed, task.name, i) for i in range(n)]
    batch = EpisodeBatch(task, seeds)
    actor = load_policy(uri).actor(batch.spec)
    actor.reset(slot_seeds(seeds, batch.spec.num_agents))
    rows = np.arange(len(batch.actions))
    observations = batch.observations.copy()
    batch.close()
    actor.act(observations, rows, 0)
    start = time.perf_counter()
    for step in range(steps):
        actor.act(observations, rows, step)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--suite", default=str(REPO / "suites" / "navigation.yaml"))
    parser.add_argument("--task", default="navigation/maze_medium")
    parser.add_argument("--episodes", type=int, default=32, help="episodes for (a), (c) and (d)")
    parser.add_argument("--baseline-episodes", type=int, default=4, help="episodes for (b), the slow one")
    args = parser.parse_args()

    suite = load_suite(args.suite)
    task = next(t for t in suite.tasks if t.name == args.task).with_overrides(num_episodes=args.episodes)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = make_checkpoint(task, Path(tmp) / "bench.pt")
        uri = f"file://{ckpt}"
        a_time, a_steps, a_policy = bench_runner(task, uri)
        b_time, b_steps = bench_mettagrid(task, ckpt, args.baseline_episodes)
        c_time, c_steps = bench_engine_alone(task)
        steps_per_episode = a_steps // (args.episodes * task_env_spec(task).num_agents)
        d_time = bench_policy_alone(task, uri, steps_per_episode)

    rate = {"a": a_steps / a_time, "b": b_steps / b_time, "c": c_steps / c_time}
    engine_plus_policy = c_time * (a_steps / c_steps) + d_time
    print(
        f"task {task.name}: {args.episodes} episodes x {steps_per_episode} steps "
        f"({task_env_spec(task).num_agents} agent), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(
        f"(a) batched runner            {rate['a']:>10,.0f} agent-steps/s  "
        f"({a_steps} steps in {a_time:.2f}s; "
        f"policy calls {a_policy:.2f}s)"
    )
    print(
        f"(b) mettagrid rollout         {rate['b']:>10,.0f} agent-steps/s  "
        f"({b_steps} steps in {b_time:.2f}s, "
        f"{args.baseline_episodes} episodes)"
    )
    print(
        f"(c) engine alone, no policy   {rate['c']:>10,.0f} agent-steps/s  ({c_steps} steps in {c_time:.2f}s)"
    )
    print(
        f"(d) batched policy calls alone                       ({d_time:.2f}s for {steps_per_episode} calls)"
    )
    print(f"speedup (a) over (b):                 {rate['a'] / rate['b']:6.1f}x   (target >= 10x)")
    print(f"time (a) / [time (c) + time (d)]:     {a_time / engine_plus_policy:6.2f}    (target <= 1.3)")


if __name__ == "__main__":
    main()
