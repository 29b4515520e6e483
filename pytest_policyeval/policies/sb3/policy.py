"""An SB3 model as a batched Policy: one forward pass per step for every live agent slot.

Actions follow `BasePolicy.predict` (common/policies.py, stable-baselines3 2.9.2): observations
are preprocessed as `preprocess_obs` does (Box: float; Discrete: one-hot) and flattened;
deterministic actions are the distribution's mode (argmax of the categorical's probabilities,
the Gaussian's mean, tanh of it for SAC, the greedy Q action for DQN); Box actions are then
clipped to the action space, or for SAC unscaled from [-1, 1] to it, in float32 numpy as SB3 does.

Sampled actions draw from each slot's own stream (`seeding.uniforms`), never from a global
generator, so an episode's actions do not depend on the batch it shares: categorical by
Gumbel-max, Gaussians by Box-Muller. DQN explores epsilon-greedily with the saved
exploration_rate, deciding per slot (SB3's `DQN.predict` decides once for a whole batch).

The network is computed in fixed blocks of rows (`policies/blocks.py`), so a slot's float32
output, and with it a continuous action and the episode's return, does not change with the number
of live episodes, the round or the replay it was played in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from pytest_policyeval.policies.base import Actor, Policy, PolicyLoadError
from pytest_policyeval.policies.blocks import in_fixed_blocks
from pytest_policyeval.policies.sampling import check_finite, gumbel_noise
from pytest_policyeval.policies.sb3.metadata import ACTOR_CRITIC, DQN, SAC, ModelFacts
from pytest_policyeval.policies.torch_policy import network_on, torch_device
from pytest_policyeval.seeding import uniforms
from pytest_policyeval.spec import EnvSpec


def normal_noise(seeds: np.ndarray, step: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Standard normal draws (len(seeds), width) by Box-Muller over each slot's uniforms."""
    u = uniforms(seeds, step, 2 * width)
    z = np.sqrt(-2.0 * np.log(u[:, :width])) * np.cos(2.0 * np.pi * u[:, width:])
    return torch.from_numpy(z).to(like.device, like.dtype)


def categorical_mode(logits: torch.Tensor) -> torch.Tensor:
    """SB3's `CategoricalDistribution.mode`: argmax of torch Categorical's probs, computed as it does
    (normalised logits, then softmax), so near-ties resolve exactly as SB3's do."""
    normalised = logits - logits.logsumexp(dim=-1, keepdim=True)
    return torch.softmax(normalised, dim=-1).argmax(dim=1)


class SB3Actor(Actor):
    def __init__(self, policy: SB3Policy, env: EnvSpec, device: str):
        self.policy = policy
        self.facts = policy.facts
        self.device = torch.device(device)
        self.network = network_on(policy.network, self.device)
        self.seeds = np.zeros(0, dtype=np.uint64)
        box = self.facts.action.kind == "Box"
        # The task's own bounds, checked equal to the archive's printed ones: exact values, in the
        # space's dtype, as SB3 clips and unscales with its saved space's arrays.
        self.low = np.asarray(env.action_space.low) if box else None
        self.high = np.asarray(env.action_space.high) if box else None

    def reset(self, slot_seeds: np.ndarray) -> None:
        self.seeds = np.asarray(slot_seeds, dtype=np.uint64)

    def _features(self, observations: np.ndarray) -> torch.Tensor:
        space = self.facts.observation
        observations = np.asarray(observations)
        rows = len(observations)
        if space.kind == "Discrete":
            values = observations.reshape(rows)
            if rows and (values.min() < 0 or values.max() >= space.n):
                raise ValueError(f"{self.policy.uri}: a Discrete({space.n}) observation is out of range")
            index = torch.from_numpy(values.astype(np.int64)).to(self.device, non_blocking=True)
            return functional.one_hot(index, space.n).float()
        if observations.shape[1:] != space.shape:
            raise ValueError(
                f"{self.policy.uri}: observations of shape {observations.shape[1:]}, not {space.shape}"
            )
        return torch.as_tensor(observations).to(self.device, non_blocking=True).float().reshape(rows, -1)

    @torch.inference_mode()
    def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray:
        features = self._features(observations)
        seeds = self.seeds[slots]
        if self.facts.family == SAC:
            mean, log_std = in_fixed_blocks(self.network, features)
            check_finite(mean, self.policy.uri, step, slots)
            return self._box(torch.tanh(self._gaussian(mean, log_std, seeds, step)), squashed=True)
        out = in_fixed_blocks(self.network, features)  # logits, Q-values or Gaussian means
        check_finite(out, self.policy.uri, step, slots)
        if self.facts.family == DQN:
            return self._epsilon_greedy(out, seeds, step)
        if self.facts.action.kind == "Discrete":
            if self.policy.deterministic:
                return categorical_mode(out).cpu().numpy()
            return (out + gumbel_noise(seeds, step, out.shape[1], out)).argmax(dim=1).cpu().numpy()
        return self._box(self._gaussian(out, self.network.log_std, seeds, step), squashed=False)

    def _gaussian(
        self, mean: torch.Tensor, log_std: torch.Tensor, seeds: np.ndarray, step: int
    ) -> torch.Tensor:
        """The mean, or a draw `mean + noise * std` as torch's Normal.rsample makes it."""
        if self.policy.deterministic:
            return mean
        return mean + normal_noise(seeds, step, mean.shape[1], mean) * log_std.exp()

    def _epsilon_greedy(self, q_values: torch.Tensor, seeds: np.ndarray, step: int) -> np.ndarray:
        greedy = q_values.argmax(dim=1).cpu().numpy()
        rate, n = self.facts.exploration_rate, self.facts.action.n
        if self.policy.deterministic or rate == 0.0:
            return greedy
        u = uniforms(seeds, step, 2)
        random = np.minimum((u[:, 1] * n).astype(np.int64), n - 1)
        return np.where(u[:, 0] < rate, random, greedy)

    def _box(self, actions: torch.Tensor, squashed: bool) -> np.ndarray:
        """Into the action space as `BasePolicy.predict` does, in numpy: unscaled from [-1, 1], or clipped."""
        values = actions.cpu().numpy().reshape((-1, *self.facts.action.shape))
        if squashed:
            return self.low + (0.5 * (values + 1.0) * (self.high - self.low))
        return np.clip(values, self.low, self.high)


class SB3Policy(Policy):
    uses_torch = True

    def __init__(
        self,
        uri: str,
        name: str,
        facts: ModelFacts,
        network: nn.Module,
        deterministic: bool,
        info: dict[str, Any],
    ):
        self.uri = uri
        self.name = name
        self.facts = facts
        self.network = network.eval()
        self.deterministic = deterministic
        self.info = info

    def check_env(self, env: EnvSpec) -> None:
        """Refuse a task whose spaces are not the ones the model was trained on."""
        where = f"task {env.env_id}" if env.env_id else f"this {env.engine} task"
        for what, facts, space in (
            ("observations", self.facts.observation, env.observation_space),
            ("actions", self.facts.action, env.action_space),
        ):
            reason = "it has none" if space is None else facts.mismatch(space)
            if reason is not None:
                raise PolicyLoadError(
                    f"{self.uri}: the model was trained with {what} {facts.describe()}, but {where} has "
                    f"{space}: {reason}"
                )

    def actor(self, env: EnvSpec, device: str = "cpu") -> Actor:
        self.check_env(env)
        return SB3Actor(self, env, torch_device(device))


def describe_architecture(facts: ModelFacts) -> dict[str, Any]:
    """Facts for the result files."""
    distribution = {
        ACTOR_CRITIC: "categorical" if facts.action.kind == "Discrete" else "diagonal gaussian",
        DQN: "greedy q (epsilon-greedy when sampled)",
        SAC: "squashed gaussian",
    }[facts.family]
    return {
        "policy_class": facts.policy_class,
        "net_arch": facts.net_arch,
        "activation": facts.activation,
        "observation_space": facts.observation.describe(),
        "action_space": facts.action.describe(),
        "distribution": distribution,
    }
