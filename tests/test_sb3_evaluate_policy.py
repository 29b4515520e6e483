"""A Stable-Baselines3 model scores under pytest exactly what SB3's own `evaluate_policy` gives it.

The models in examples/policies/ were written by SB3 (scripts/train_sb3_examples.py). Each episode
of the suite is replayed through `stable_baselines3.common.evaluation.evaluate_policy` on one env
whose first reset uses that episode's seed; the per-episode returns must be equal (CartPole's are
whole numbers: identical; Pendulum's are float32 rewards, which SB3's vectorised env sums after
a float32 buffer: equal to 1e-6).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")
import gymnasium as gym
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

REPO = Path(__file__).resolve().parents[1]
SUITE = """
name: sb3
seed: {seed}
defaults: {{engine: gymnasium, gate: mean, num_episodes: {episodes}}}
tasks:
  - {{name: classic/{name}, env: {env}, max_steps: {max_steps}, threshold: {threshold}}}
"""


class FirstResetSeed(gym.Wrapper):
    """Seeds the env's first reset with the episode's seed (SB3's vec env resets without one)."""

    def __init__(self, env: gym.Env, seed: int):
        super().__init__(env)
        self._seed: int | None = seed

    def reset(self, **kwargs):
        seed, self._seed = self._seed, None
        return self.env.reset(seed=seed) if seed is not None else self.env.reset(**kwargs)


def sb3_returns(model, env_id: str, seeds: list[int]) -> list[tuple[float, int]]:
    returns = []
    for seed in seeds:  # one episode per seed, in order, as SB3 would play it
        venv = DummyVecEnv([lambda seed=seed: FirstResetSeed(gym.make(env_id), seed)])
        rewards, lengths = evaluate_policy(
            model, venv, n_eval_episodes=1, deterministic=True, return_episode_rewards=True, warn=False
        )
        returns.append((float(rewards[0]), int(lengths[0])))
    return returns


def our_returns(folder: Path, uri: str, **suite: object) -> tuple[list[int], list[tuple[float, int]]]:
    """The per-episode returns `pytest --policy-uri URI` reports (in a process of its own: SB3's
    lazily imported torch modules cannot be dropped and imported again, as pytester would)."""
    (folder / "suites").mkdir(exist_ok=True)
    (folder / "suites/sb3.yaml").write_text(SUITE.format(**suite))
    command = [sys.executable, "-m", "pytest", "-p", "no:importnb", "-p", "no:cacheprovider"]
    command += ["--policy-uri", uri, "--eval-json", "r.json", "suites/sb3.yaml"]
    subprocess.run(command, cwd=folder, capture_output=True, timeout=300)
    document = json.loads((folder / "r.json").read_text())
    (detail,) = document["policies"][0]["checkpoints"][0]["metrics"]["tasks"].values()
    assert detail["error"] is None, detail["error"]
    return detail["seeds"], list(zip(detail["episode_scores"], detail["episode_steps"], strict=True))


def test_cartpole_ppo_returns_are_identical_to_evaluate_policy(tmp_path: Path) -> None:
    zip_path = REPO / "examples/policies/cartpole_ppo.zip"
    seeds, ours = our_returns(
        tmp_path, f"sb3://{zip_path}", seed=3, episodes=12, name="cartpole", env="CartPole-v1",
        max_steps=500, threshold=475,
    )  # fmt: skip
    theirs = sb3_returns(PPO.load(zip_path, device="cpu"), "CartPole-v1", seeds)
    assert ours == theirs
    assert len({length for _, length in ours}) > 1 or ours[0][1] == 500  # real episodes, not one step


def test_pendulum_sac_returns_equal_evaluate_policy(tmp_path: Path) -> None:
    zip_path = REPO / "examples/policies/pendulum_sac.zip"
    seeds, ours = our_returns(
        tmp_path, f"sb3://{zip_path}", seed=5, episodes=6, name="pendulum", env="Pendulum-v1",
        max_steps=200, threshold=-200,
    )  # fmt: skip
    theirs = sb3_returns(SAC.load(zip_path, device="cpu"), "Pendulum-v1", seeds)
    assert [steps for _, steps in ours] == [steps for _, steps in theirs] == [200] * 6
    for (mine, _), (sb3, _) in zip(ours, theirs, strict=True):
        assert mine == pytest.approx(sb3, rel=1e-6, abs=1e-4)
    assert len({round(score, 3) for score, _ in ours}) == 6  # six different episodes


def test_a_downloaded_or_bare_sb3_zip_is_told_by_its_content(tmp_path: Path) -> None:
    zip_path = REPO / "examples/policies/cartpole_ppo.zip"
    _, by_scheme = our_returns(
        tmp_path, f"sb3://{zip_path}", seed=1, episodes=3, name="cartpole", env="CartPole-v1",
        max_steps=500, threshold=475,
    )  # fmt: skip
    _, by_path = our_returns(
        tmp_path, str(zip_path), seed=1, episodes=3, name="cartpole", env="CartPole-v1",
        max_steps=500, threshold=475,
    )  # fmt: skip
    assert by_path == by_scheme
