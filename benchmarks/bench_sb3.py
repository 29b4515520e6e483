"""SB3 benchmark: one Stable-Baselines3 model evaluated on the same episodes three ways.

  (a) this project's batched runner (`play_episodes` over the gymnasium engine, the model read by the
      sb3:// loader): every episode in lockstep, one forward pass a step for all of them;
  (b) SB3's `evaluate_policy` as its docs show it: one env, episodes one after another;
  (c) `evaluate_policy` on a DummyVecEnv with one env per episode (SB3's own batching).

Every variant plays the same seeds and the same deterministic policy; the script checks that (a)
and (b) give identical per-episode returns before timing anything. Target: (a) >= 5x (b) at 32
episodes.

    python benchmarks/bench_sb3.py [--episodes 32] [--repeats 3]

The model is examples/policies/cartpole_ppo.zip (a trained PPO: most episodes last 500 steps).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_policyeval.engines.gymnasium.settings import GymnasiumSettings  # noqa: E402
from pytest_policyeval.policies import load_policy  # noqa: E402
from pytest_policyeval.runner import play_episodes  # noqa: E402
from pytest_policyeval.seeding import episode_seed  # noqa: E402
from pytest_policyeval.task import Task, TaskSettings  # noqa: E402

MODEL = REPO / "examples/policies/cartpole_ppo.zip"


class SeedSequence(gym.Wrapper):
    """One env playing a list of seeds in turn: episode k starts with seeds[k]."""

    def __init__(self, env: gym.Env, seeds: list[int]):
        super().__init__(env)
        self._seeds = list(seeds)

    def reset(self, **kwargs):
        return self.env.reset(seed=self._seeds.pop(0)) if self._seeds else self.env.reset(**kwargs)


def ours(task: Task, episodes: int) -> tuple[float, list[float]]:
    policy = load_policy(f"sb3://{MODEL}")
    started = time.perf_counter()
    rollout = play_episodes(task, policy, indices=list(range(episodes)))
    return time.perf_counter() - started, [e.score for e in rollout.episodes]


def sb3_sequential(model: PPO, seeds: list[int]) -> tuple[float, list[float]]:
    venv = DummyVecEnv([lambda: SeedSequence(gym.make("CartPole-v1"), seeds)])
    started = time.perf_counter()
    rewards, _ = evaluate_policy(
        model, venv, n_eval_episodes=len(seeds), deterministic=True, return_episode_rewards=True, warn=False
    )
    return time.perf_counter() - started, [float(r) for r in rewards]


def sb3_vectorised(model: PPO, seeds: list[int]) -> tuple[float, list[float]]:
    venv = DummyVecEnv([lambda s=s: SeedSequence(gym.make("CartPole-v1"), [s]) for s in seeds])
    started = time.perf_counter()
    rewards, _ = evaluate_policy(
        model, venv, n_eval_episodes=len(seeds), deterministic=True, return_episode_rewards=True, warn=False
    )
    return time.perf_counter() - started, sorted(float(r) for r in rewards)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # all three on one core, side by side
    task = Task(
        suite="bench",
        name="classic/cartpole",
        settings=TaskSettings(num_episodes=args.episodes, max_steps=500, gate="mean"),
        seed=0,
        engine="gymnasium",
        env=GymnasiumSettings(env="CartPole-v1"),
    )
    seeds = [episode_seed(task.seed, task.name, i) for i in range(args.episodes)]
    model = PPO.load(MODEL, device="cpu")
    _, mine = ours(task, args.episodes)  # warm-up (imports, first env)
    _, theirs = sb3_sequential(model, seeds)
    assert mine == theirs, "per-episode returns differ: the comparison would not be of the same work"
    steps = int(sum(mine))
    best = {"a": 1e9, "b": 1e9, "c": 1e9}
    for _ in range(args.repeats):
        best["a"] = min(best["a"], ours(task, args.episodes)[0])
        best["b"] = min(best["b"], sb3_sequential(model, seeds)[0])
        elapsed, vectorised = sb3_vectorised(model, seeds)
        best["c"] = min(best["c"], elapsed)
        assert vectorised == sorted(mine)
    print(f"CartPole-v1, trained PPO, {args.episodes} episodes, {steps} env steps, best of {args.repeats}")
    rows = [
        ("(a) batched runner (sb3:// + gymnasium engine)", best["a"]),
        ("(b) evaluate_policy, one env", best["b"]),
        (f"(c) evaluate_policy, DummyVecEnv x {args.episodes}", best["c"]),
    ]
    for label, seconds in rows:
        print(f"  {label:<50} {seconds:7.3f} s  {steps / seconds:9.0f} steps/s")
    ratio = best["b"] / best["a"]
    verdict = "PASS" if ratio >= 5 else "MISS"
    print(f"  (a) vs (b): {ratio:.1f}x (target >= 5x: {verdict}); (a) vs (c): {best['c'] / best['a']:.1f}x")
    print("  (a) and (b) gave identical per-episode returns; (c) the same ones, finished in another order")


if __name__ == "__main__":
    main()
