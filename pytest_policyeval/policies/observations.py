"""Token observations to tensors, mapping the environment's feature ids onto a policy's by name.

A policy is trained with a list of feature names and tag names; an environment numbers its
features in its own way. The encoder builds lookup tables once per (policy, task) so that
each token lands in the channel the policy was trained with, whatever id the engine gave it.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from pytest_policyeval.spec import TokenSpec

EMPTY_TOKEN = 0xFF  # a coordinate byte that marks an unused token slot
GLOBAL_TOKEN = 0xFE  # a coordinate byte that marks a global (not spatial) token
TAG_FEATURE = "tag"

log = logging.getLogger(__name__)


def used_tokens(observations: np.ndarray) -> np.ndarray:
    """`[B, T, 3]` tokens without the trailing slots that no agent of the batch uses.

    An agent sees far fewer tokens than the engine allots it (about 40 of 200 on a navigation
    map); every later step of an encoder then touches only the slots in use.
    """
    occupied = np.flatnonzero((observations[:, :, 0] != EMPTY_TOKEN).any(axis=0))
    used = int(occupied[-1]) + 1 if len(occupied) else 1
    return observations if used == observations.shape[1] else observations[:, :used]


class TokenEncoder(torch.nn.Module):
    """`[B, T, 3]` uint8 tokens -> spatial box `[B, F + K, H, W]` and globals `[B, F]`.

    F = policy features (values scaled by the policy's `obs_scale`), K = policy tags (one-hot).
    The environment's window is centred in the policy's window; tokens outside are dropped.
    """

    def __init__(
        self,
        env: TokenSpec,
        feature_names: list[str],
        tag_names: list[str],
        window: int,
        obs_scale: torch.Tensor,
    ):
        super().__init__()
        self.num_features = len(feature_names)
        self.num_channels = len(feature_names) + len(tag_names)
        self.window = window
        policy_feature = {name: i for i, name in enumerate(feature_names)}
        policy_tag = {name: i for i, name in enumerate(tag_names)}
        feature_lut = torch.full((256,), -1, dtype=torch.long)
        for env_id, name in enumerate(env.feature_names):
            if name in policy_feature:
                feature_lut[env_id] = policy_feature[name]
        tag_lut = torch.full((256,), -1, dtype=torch.long)
        for env_value, name in enumerate(env.tag_names):
            if name in policy_tag:
                tag_lut[env_value] = self.num_features + policy_tag[name]
        unseen = sorted(set(feature_names) - set(env.feature_names) - {TAG_FEATURE})
        if unseen:
            log.info("policy features absent from this environment read as zero: %s", unseen)
        self.tag_feature_id = env.feature_id(TAG_FEATURE) if env.tag_names else None
        self.register_buffer("feature_lut", feature_lut)
        self.register_buffer("tag_lut", tag_lut)
        self.register_buffer("scale", obs_scale.clone().float())
        self.row_offset = (window - env.obs_height) // 2
        self.col_offset = (window - env.obs_width) // 2

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch = tokens.shape[0]
        tokens = tokens.long()
        coord, feature, value = tokens[..., 0], tokens[..., 1], tokens[..., 2]
        channel = self.feature_lut[feature]
        amount = value.float() * self.scale[channel.clamp(min=0)]
        if self.tag_feature_id is not None:
            is_tag = feature == self.tag_feature_id
            channel = torch.where(is_tag, self.tag_lut[value], channel)
            amount = torch.where(is_tag, torch.ones_like(amount), amount)
        known = (coord != EMPTY_TOKEN) & (channel >= 0)
        is_global = coord == GLOBAL_TOKEN
        rows = (coord >> 4) + self.row_offset
        cols = (coord & 0xF) + self.col_offset
        in_view = (rows >= 0) & (rows < self.window) & (cols >= 0) & (cols < self.window)
        spatial = known & ~is_global & in_view
        batch_index = torch.arange(batch, device=tokens.device).unsqueeze(1).expand_as(coord)

        box = tokens.new_zeros((batch, self.num_channels, self.window, self.window), dtype=torch.float32)
        box.index_put_(
            (batch_index[spatial], channel[spatial], rows[spatial], cols[spatial]),
            amount[spatial],
            accumulate=True,
        )
        globals_ = tokens.new_zeros((batch, self.num_features), dtype=torch.float32)
        glob = known & is_global & (channel < self.num_features)
        globals_.index_put_((batch_index[glob], channel[glob]), amount[glob], accumulate=True)
        return box, globals_
