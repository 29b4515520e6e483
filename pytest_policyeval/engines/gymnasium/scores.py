"""Bounds on an episode's return that follow from an environment's rules (gymnasium's own source).

Keyed by the registration's entry point, not the id, so a bound is only claimed for the class it
was read from. `steps` is the most steps an episode can last: the task's max_steps capped by the
environment's TimeLimit. Bounds with non-integer rewards are widened by a hair so float rounding in
the sum can never step outside them. Read from gymnasium 1.x, envs/classic_control/*.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

CLASSIC = "gymnasium.envs.classic_control."
# Pendulum's worst step costs theta^2 + 0.1 * thetadot^2 + 0.001 * torque^2 with |theta| <= pi
# (angle_normalize), |thetadot| <= max_speed = 8 and |torque| <= max_torque = 2 (constants, not
# arguments): pi^2 + 6.4 + 0.004 = 16.27360440108936..., which the docs round down to 16.2736044.
PENDULUM_WORST_STEP = 16.2736045
SLACK = 1e-9  # relative widening of bounds whose rewards are not integers


def _cartpole(kwargs: Mapping[str, Any], steps: int) -> tuple[float, float]:
    # +1 every step including the one the pole falls on; with sutton_barto_reward, 0 a step and
    # -1 on the falling step (an episode ends there).
    return (-1.0, 0.0) if kwargs.get("sutton_barto_reward") else (0.0, float(steps))


def _minus_one_per_step(kwargs: Mapping[str, Any], steps: int) -> tuple[float, float]:
    # MountainCar: -1 every step. Acrobot: -1 every step but the one that reaches the goal (0).
    return (-float(steps), 0.0)


def _pendulum(kwargs: Mapping[str, Any], steps: int) -> tuple[float, float]:
    # Every reward is minus a cost in [0, PENDULUM_WORST_STEP]; `g` changes neither bound.
    return (-PENDULUM_WORST_STEP * steps * (1 + SLACK), 0.0)


def _mountain_car_continuous(kwargs: Mapping[str, Any], steps: int) -> tuple[float, float]:
    # -0.1 * action^2 every step (the action as given: the batch clips it to [-1, 1] first), and
    # +100 added on the step that reaches the goal, which ends the episode.
    return (-0.1 * steps * (1 + SLACK), 100.0)


RULES: dict[str, Callable[[Mapping[str, Any], int], tuple[float, float]]] = {
    CLASSIC + "cartpole:CartPoleEnv": _cartpole,
    CLASSIC + "mountain_car:MountainCarEnv": _minus_one_per_step,
    CLASSIC + "acrobot:AcrobotEnv": _minus_one_per_step,
    CLASSIC + "pendulum:PendulumEnv": _pendulum,
    CLASSIC + "continuous_mountain_car:Continuous_MountainCarEnv": _mountain_car_continuous,
}


def rules_score_range(entry_point: str, kwargs: Mapping[str, Any], steps: int) -> tuple[float, float] | None:
    """The return's bounds for an environment made from `entry_point`, or None where none is known."""
    rule = RULES.get(entry_point)
    if rule is None:
        return None
    low, high = rule(kwargs, steps)
    return (low, high) if math.isfinite(low) and low < high else None
