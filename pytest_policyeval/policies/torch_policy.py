"""Neural policies: a torch module behind the batched `Actor` interface.

One forward pass per step for every live agent of every episode of a task, under
`torch.inference_mode`. Recurrent state lives in one tensor indexed by agent slot. Actions are
sampled with the Gumbel-max trick from counter-based noise, so a slot's action never depends
on which other slots share its batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pytest_policyeval.policies.base import Actor, Policy, PolicyLoadError, token_spec
from pytest_policyeval.policies.blocks import in_fixed_blocks
from pytest_policyeval.policies.checkpoint import Checkpoint, file_digest, read_checkpoint
from pytest_policyeval.policies.networks import build_network
from pytest_policyeval.policies.observations import TokenEncoder, used_tokens
from pytest_policyeval.policies.sampling import check_finite, gumbel_noise
from pytest_policyeval.policies.steady import read_steadily
from pytest_policyeval.spec import EnvSpec


def load_state_strict(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load weights or refuse, naming the first key that does not fit. Never run random weights."""
    check_shapes(module, state_dict, source)
    module.load_state_dict(state_dict, strict=True)


def check_shapes(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Refuse, naming the first key, unless the state dict has exactly the module's keys and shapes.

    Works on a module built on the meta device too, so a checkpoint can be checked against its
    architecture before that architecture's weights are allocated.
    """
    expected = module.state_dict()
    for key, tensor in expected.items():
        if key not in state_dict:
            raise PolicyLoadError(
                f"{source}: checkpoint lacks '{key}' (expected shape {tuple(tensor.shape)})"
            )
        if tuple(state_dict[key].shape) != tuple(tensor.shape):
            raise PolicyLoadError(
                f"{source}: '{key}' has shape {tuple(state_dict[key].shape)} in the checkpoint "
                f"but the architecture expects {tuple(tensor.shape)}"
            )
    extra = sorted(set(state_dict) - set(expected))
    if extra:
        raise PolicyLoadError(f"{source}: checkpoint has keys the architecture does not: {extra[:5]}")


def torch_device(device: str) -> str:
    """The device name, or a clear error where torch cannot use it."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PolicyLoadError(
            f"--device {device}: torch {torch.__version__} sees no CUDA device on this machine; "
            "use --device cpu"
        )
    return device


def network_on(network: nn.Module, device: torch.device) -> nn.Module:
    """The policy's one network on `device` (moved in place: every actor shares its weights)."""
    first = next(network.parameters(), None)
    if first is not None and first.device != device:
        network.to(device)
    return network


def action_table(policy_actions: list[str], env: EnvSpec, source: str) -> torch.Tensor:
    """Environment action id for each policy action; -1 where the environment lacks it."""
    table = [env.action_names.index(name) if name in env.action_names else -1 for name in policy_actions]
    if all(index < 0 for index in table):
        raise PolicyLoadError(
            f"{source}: none of the policy's actions {policy_actions} exist in this environment "
            f"(it has {list(env.action_names)})"
        )
    return torch.tensor(table, dtype=torch.long)


class TorchActor(Actor):
    def __init__(self, policy: TorchPolicy, env: EnvSpec, device: str):
        self.device = torch.device(device)
        self.policy = policy
        self.network = network_on(policy.network, self.device)
        self.encoder = TokenEncoder(
            env,
            policy.feature_names,
            policy.tag_names,
            window=policy.window,
            obs_scale=self.network.obs_scale,
        ).to(self.device)
        table = action_table(policy.action_names, env, policy.uri)
        self.env_action = table.to(self.device)
        # Policy actions the environment lacks can never be chosen.
        self.unavailable = (table < 0).to(self.device)
        self.state: tuple[torch.Tensor, torch.Tensor] | None = None
        self.seeds = np.zeros(0, dtype=np.uint64)

    def reset(self, slot_seeds: np.ndarray) -> None:
        self.seeds = np.asarray(slot_seeds, dtype=np.uint64)
        self.state = self.network.initial_state(len(self.seeds), self.device)

    @torch.inference_mode()
    def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray:
        assert self.state is not None, "reset() before act()"
        tokens = torch.from_numpy(used_tokens(observations)).to(self.device, non_blocking=True)
        index = torch.from_numpy(np.asarray(slots, dtype=np.int64)).to(self.device)
        box, globals_ = in_fixed_blocks(self.encoder, tokens)
        hidden, cell = self.state
        logits, _value, (new_hidden, new_cell) = in_fixed_blocks(
            lambda b, g, h, c: self.network(b, g, (h, c)), box, globals_, hidden[index], cell[index]
        )
        hidden[index] = new_hidden
        cell[index] = new_cell
        check_finite(logits, self.policy.uri, step, slots)
        scores = (logits + gumbel_noise(self.seeds[slots], step, logits.shape[1], logits)).masked_fill(
            self.unavailable, float("-inf")
        )
        return self.env_action[scores.argmax(dim=1)].to(torch.int32).cpu().numpy()


class TorchPolicy(Policy):
    """A network with the names of its features, tags and actions."""

    uses_torch = True

    def __init__(
        self,
        uri: str,
        name: str,
        network: nn.Module,
        feature_names: list[str],
        tag_names: list[str],
        action_names: list[str],
        window: int,
        info: dict[str, Any] | None = None,
    ):
        self.uri = uri
        self.name = name
        self.network = network.eval()
        self.feature_names = feature_names
        self.tag_names = tag_names
        self.action_names = action_names
        self.window = window
        self.info = info or {}

    def actor(self, env: EnvSpec, device: str = "cpu") -> Actor:
        return TorchActor(self, token_spec(env, self.uri), torch_device(device))


def policy_from_checkpoint(checkpoint: Checkpoint, uri: str, name: str, source: str) -> TorchPolicy:
    try:
        network = build_network(checkpoint.architecture, checkpoint.config)
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyLoadError(
            f"{source}: cannot build architecture '{checkpoint.architecture}': {exc}"
        ) from None
    load_state_strict(network, checkpoint.state_dict, source)
    window = int(checkpoint.config.get("window", 11))
    return TorchPolicy(
        uri=uri,
        name=name,
        network=network,
        feature_names=checkpoint.feature_names,
        tag_names=checkpoint.tag_names,
        action_names=checkpoint.action_names,
        window=window,
        info={"kind": "checkpoint", "architecture": checkpoint.architecture, "metadata": checkpoint.metadata},
    )


def load_file_policy(uri: str, path: Path, name: str) -> TorchPolicy:
    with read_steadily(str(path), path):  # the digest is of the bytes the weights came from
        checkpoint = read_checkpoint(path)
        policy = policy_from_checkpoint(checkpoint, uri, name, str(path))
        policy.info["digest"] = file_digest(path)
    policy.info["path"] = str(path)
    return policy
