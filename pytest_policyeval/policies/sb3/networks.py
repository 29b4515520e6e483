"""SB3's MLP policies as plain torch modules, with SB3's parameter names, built from the facts.

Layouts follow stable-baselines3 2.9.2: `create_mlp` and `MlpExtractor` (common/torch_layers.py),
`ActorCriticPolicy._build` (common/policies.py), `QNetwork`/`DQNPolicy` (dqn/policies.py), `Actor`,
`ContinuousCritic`/`SACPolicy` (sac/policies.py). FlattenExtractor has no weights, so whether
extractors are shared changes no key. Layer sizes are read from the state dict and must agree with
the net_arch the data states (or SB3's default); then the whole state dict must fit the module
exactly, critics and target networks included, so weights are never partly random.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from pytest_policyeval.policies.base import PolicyLoadError
from pytest_policyeval.policies.sb3.metadata import ACTOR_CRITIC, DQN, SAC, ModelFacts
from pytest_policyeval.policies.torch_policy import check_shapes, load_state_strict

# SAC's Actor clamps its log std to these (sac/policies.py LOG_STD_MIN, LOG_STD_MAX).
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
# Where each family keeps its MLPs in the state dict, and whether the MLP ends in an output layer.
MLPS = {
    ACTOR_CRITIC: {"pi": ("mlp_extractor.policy_net", False), "vf": ("mlp_extractor.value_net", False)},
    DQN: {"q": ("q_net.q_net", True)},
    SAC: {"pi": ("actor.latent_pi", False), "qf": ("critic.qf0", True)},
}


def activation(name: str) -> nn.Module:
    return nn.Identity() if name == "Identity" else getattr(nn, name)()


def create_mlp(input_dim: int, output_dim: int, net_arch: list[int], act: str) -> nn.Sequential:
    """SB3's `create_mlp`: Linear, activation, ... and a last Linear where output_dim > 0."""
    modules: list[nn.Module] = []
    last = input_dim
    for size in net_arch:
        modules += [nn.Linear(last, size), activation(act)]
        last = size
    if output_dim > 0:
        modules.append(nn.Linear(last, output_dim))
    return nn.Sequential(*modules)


def _holder(**children: nn.Module) -> nn.Module:
    """A bare module holding children, so parameter names nest as SB3's do."""
    module = nn.Module()
    for name, child in children.items():
        module.add_module(name, child)
    return module


class ActorCriticNet(nn.Module):
    """ActorCriticPolicy with FlattenExtractor: the action net's output is logits or Gaussian means."""

    def __init__(self, facts: ModelFacts):
        super().__init__()
        features, pi, vf = facts.observation.size, facts.net_arch["pi"], facts.net_arch["vf"]
        self.mlp_extractor = _holder(
            policy_net=create_mlp(features, -1, pi, facts.activation),
            value_net=create_mlp(features, -1, vf, facts.activation),
        )
        self.action_net = nn.Linear(pi[-1] if pi else features, facts.action_dim)
        self.value_net = nn.Linear(vf[-1] if vf else features, 1)
        if facts.action.kind == "Box":  # DiagGaussianDistribution's state-independent log std
            self.log_std = nn.Parameter(torch.zeros(facts.action_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.action_net(self.mlp_extractor.policy_net(features))


class QNet(nn.Module):
    """DQNPolicy: the online Q-network (and its target, loaded only to check the file)."""

    def __init__(self, facts: ModelFacts):
        super().__init__()
        features, arch = facts.observation.size, facts.net_arch["q"]
        self.q_net = _holder(q_net=create_mlp(features, facts.action.n, arch, facts.activation))
        self.q_net_target = _holder(q_net=create_mlp(features, facts.action.n, arch, facts.activation))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.q_net.q_net(features)


class SACNet(nn.Module):
    """SACPolicy without gSDE: the actor gives Gaussian means and clamped log stds before tanh."""

    def __init__(self, facts: ModelFacts, n_critics: int):
        super().__init__()
        features, pi, qf = facts.observation.size, facts.net_arch["pi"], facts.net_arch["qf"]
        last = pi[-1] if pi else features
        self.actor = _holder(
            latent_pi=create_mlp(features, -1, pi, facts.activation),
            mu=nn.Linear(last, facts.action_dim),
            log_std=nn.Linear(last, facts.action_dim),
        )

        def critic() -> nn.Module:
            inputs = features + facts.action_dim
            return _holder(
                **{f"qf{i}": create_mlp(inputs, 1, qf, facts.activation) for i in range(n_critics)}
            )

        self.critic = critic()
        self.critic_target = critic()

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.actor.latent_pi(features)
        log_std = self.actor.log_std(latent).clamp(LOG_STD_MIN, LOG_STD_MAX)
        return self.actor.mu(latent), log_std


def _layer_sizes(state: dict[str, torch.Tensor], prefix: str, source: str) -> list[int]:
    """Output sizes of the Linear layers of an SB3 MLP at `prefix` (at indices 0, 2, 4...)."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.weight")
    found = {int(m.group(1)): state[key] for key in state if (m := pattern.fullmatch(key))}
    indices = sorted(found)
    if indices != list(range(0, 2 * len(indices), 2)):
        raise PolicyLoadError(
            f"{source}: the layers of '{prefix}' in policy.pth ({indices[:8]}) are not laid out as SB3's MLP "
            "(Linear, activation, Linear, ...)"
        )
    if any(weight.dim() != 2 for weight in found.values()):
        raise PolicyLoadError(f"{source}: a weight of '{prefix}' in policy.pth is not a matrix")
    return [int(found[index].shape[0]) for index in indices]


def held_net_arch(facts: ModelFacts, state: dict[str, torch.Tensor], source: str) -> dict[str, list[int]]:
    """The hidden-layer sizes the state dict's weights have, in net_arch's terms."""
    held = {}
    for key, (prefix, has_output) in MLPS[facts.family].items():
        sizes = _layer_sizes(state, prefix, source)
        held[key] = sizes[:-1] if has_output and sizes else sizes
    return held


def _critics(facts: ModelFacts, state: dict[str, torch.Tensor], source: str) -> int:
    held = len({key.split(".")[1] for key in state if re.match(r"critic\.qf\d+\.", key)})
    if facts.n_critics is not None and facts.n_critics != held:
        raise PolicyLoadError(
            f"{source}: its data says n_critics={facts.n_critics} but policy.pth holds {held}"
        )
    return held


def build_network(facts: ModelFacts, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """The policy's module with the file's weights, or a refusal naming what does not fit."""
    extractor = next((key for key in state if "features_extractor." in key), None)
    if extractor is not None:
        raise PolicyLoadError(
            f"{source}: policy.pth holds features-extractor weights ('{extractor[:80]}'): a CNN or custom "
            "extractor, which this loader does not rebuild"
        )
    held = held_net_arch(facts, state, source)
    if held != facts.net_arch:
        said = "says" if facts.net_arch_stated else "leaves SB3's default"
        raise PolicyLoadError(
            f"{source}: its data {said} net_arch {facts.net_arch} but policy.pth holds layers {held}"
        )
    with torch.device("meta"):  # checked against the file's shapes before any weight is allocated
        check_shapes(_network(facts, state, source), state, source)
    network = _network(facts, state, source)
    load_state_strict(network, state, source)
    return network.eval()


def _network(facts: ModelFacts, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    if facts.family == ACTOR_CRITIC:
        return ActorCriticNet(facts)
    if facts.family == DQN:
        return QNet(facts)
    return SACNet(facts, _critics(facts, state, source))
