"""Train the Stable-Baselines3 example models in `examples/policies/` (sb3:// zips).

Written by Stable-Baselines3 itself, so they are exactly what a team's training run produces:

    python scripts/train_sb3_examples.py cartpole --out examples/policies/cartpole_ppo.zip
    python scripts/train_sb3_examples.py pendulum --out examples/policies/pendulum_sac.zip
    python scripts/train_sb3_examples.py acrobot --out /tmp/acrobot_ppo.zip   # references for the
    python scripts/train_sb3_examples.py mountain_car --out /tmp/mountain_car_dqn.zip  # thresholds

CartPole: PPO with rl-baselines3-zoo's CartPole hyperparameters, 60k steps (about 2 minutes on
2 CPU cores). Pendulum: SAC, 12k steps (about 4 minutes). Same seed and torch build: same model.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def train(kind: str, out: Path, steps: int | None, seed: int) -> None:
    import torch
    from stable_baselines3 import DQN, PPO, SAC

    torch.set_num_threads(1)
    if kind == "cartpole":
        model = PPO(
            "MlpPolicy",
            _vec("CartPole-v1", 8, seed),
            n_steps=32,
            batch_size=256,
            gae_lambda=0.8,
            gamma=0.98,
            n_epochs=20,
            ent_coef=0.0,
            learning_rate=0.001,
            clip_range=0.2,
            seed=seed,
            verbose=0,
        )
        total = steps or 60_000
    elif kind == "acrobot":  # rl-baselines3-zoo's PPO settings, without observation normalisation
        model = PPO(
            "MlpPolicy",
            _vec("Acrobot-v1", 16, seed),
            n_steps=256,
            gae_lambda=0.94,
            gamma=0.99,
            n_epochs=4,
            ent_coef=0.0,
            seed=seed,
            verbose=0,
        )
        total = steps or 200_000
    elif kind == "mountain_car":  # rl-baselines3-zoo's DQN settings
        model = DQN(
            "MlpPolicy",
            "MountainCar-v0",
            learning_rate=4e-3,
            batch_size=128,
            buffer_size=10_000,
            learning_starts=1000,
            gamma=0.98,
            target_update_interval=600,
            train_freq=16,
            gradient_steps=8,
            exploration_fraction=0.2,
            exploration_final_eps=0.07,
            policy_kwargs={"net_arch": [256, 256]},
            seed=seed,
            verbose=0,
        )
        total = steps or 120_000
    else:
        model = SAC("MlpPolicy", "Pendulum-v1", learning_rate=0.001, seed=seed, verbose=0)
        total = steps or 12_000
    started = time.perf_counter()
    model.learn(total_timesteps=total)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    print(f"{kind}: {total} steps in {time.perf_counter() - started:.0f}s -> {out}")


def _vec(env_id: str, n: int, seed: int):
    from stable_baselines3.common.env_util import make_vec_env

    return make_vec_env(env_id, n_envs=n, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=("cartpole", "acrobot", "mountain_car", "pendulum"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train(args.kind, args.out, args.steps, args.seed)


if __name__ == "__main__":
    main()
