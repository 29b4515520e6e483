"""The one policy interface the runner uses: batched observations in, environment actions out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pytest_policyeval.spec import EnvSpec, TokenSpec


class PolicyLoadError(Exception):
    """A policy URI that cannot be turned into a policy: the message says why and where."""


def token_spec(env: EnvSpec, who: str) -> TokenSpec:
    """`env` as mettagrid's token layout, for policies that read tokens; else why they cannot play it."""
    if not isinstance(env, TokenSpec):
        raise PolicyLoadError(
            f"{who} reads mettagrid token observations, but this task's engine '{env.engine}' "
            f"({env.env_id or 'its environment'}) observes {env.observation_space}"
        )
    return env


class Actor(ABC):
    """A policy bound to one environment layout, acting for many agents at once.

    Rows are agent slots (one per agent of one episode). `reset` starts fresh slots: recurrent
    state zeroed, per-slot random streams seeded. `act` gets the observations of the live rows
    only, with their slot indices, and returns one environment action id per row.
    """

    @abstractmethod
    def reset(self, slot_seeds: np.ndarray) -> None: ...

    @abstractmethod
    def act(self, observations: np.ndarray, slots: np.ndarray, step: int) -> np.ndarray: ...

    def rewarded(self, rewards: np.ndarray, slots: np.ndarray) -> None:  # noqa: B027 (optional hook)
        """The rewards these slots got from the step their last actions made (most actors ignore it)."""


class Policy(ABC):
    """A loaded policy. Loading happens once per process; `actor` is cheap and per task.

    `info` holds facts for the result files (kind, digest, architecture, where it was fetched
    from); subclasses fill it when they load.
    """

    uri: str
    name: str
    info: dict[str, Any]
    # Whether its actions come from torch, so torch's thread count keys its kept episodes (a
    # product may sum in another order on more threads). None: not said; counted as using torch
    # whenever torch is loaded, which is right for a torch policy and only costs a non-torch one
    # cache hits (whether another policy loaded torch first changes its key).
    uses_torch: bool | None = None

    @abstractmethod
    def actor(self, env: EnvSpec, device: str = "cpu") -> Actor: ...

    def describe(self) -> dict[str, Any]:
        return {"uri": self.uri, "name": self.name, **self.info}


@dataclass(frozen=True)
class LoadOptions:
    """What a loader may need besides the URI."""

    pytorch_config: Path | None = None  # architecture config for pytorch:// checkpoints
    metta_preset: str | None = None  # what a Metta checkpoint's channels and actions mean (presets.py)
    data_dir: Path | None = None  # the download cache for remote policies (default: user cache)
    run_dir: Path | None = None  # shared by a run's processes, so each remote URI is fetched once
    wandb_entity: str | None = None  # for wandb://run/NAME (default: $WANDB_ENTITY)
    wandb_project: str | None = None  # for wandb://run/NAME (default: $WANDB_PROJECT)
