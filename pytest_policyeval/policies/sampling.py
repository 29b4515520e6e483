"""Turning logits into actions, the same way for every neural policy.

Gumbel-max over counter-based noise: a slot's sample depends on (slot seed, step, logits) only,
never on which other slots share the batch. Non-finite logits stop the task with a message
naming the policy, step and slot instead of silently picking action 0.
"""

from __future__ import annotations

import numpy as np
import torch

from pytest_policyeval.seeding import uniforms


class PolicyOutputError(RuntimeError):
    """The policy produced something that is not an action distribution (NaN, inf)."""


def check_finite(logits: torch.Tensor, uri: str, step: int, slots: np.ndarray) -> None:
    if not torch.isfinite(logits).all():
        bad = int((~torch.isfinite(logits)).any(dim=1).nonzero()[0, 0])
        raise PolicyOutputError(
            f"policy {uri} produced non-finite logits (NaN or inf) at step {step} "
            f"for agent slot {int(slots[bad])}"
        )


def gumbel_noise(seeds: np.ndarray, step: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Gumbel(0, 1) noise of shape (len(seeds), width) on `like`'s device and dtype."""
    noise = torch.from_numpy(uniforms(seeds, step, width)).to(like.device, like.dtype)
    return -torch.log(-torch.log(noise))
