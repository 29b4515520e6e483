"""Metta's external policy architecture: a "Recurrent" (LSTM) wrapping a "Policy" (encoder + heads).

The module and parameter names match Metta's external checkpoints, so their state dicts load
as they are:

    policy.max_vec                  per-feature normaliser (observations are divided by it), (1, C, 1, 1)
    policy.network.{0,2,5}          Conv2d -> ReLU -> Conv2d -> ReLU -> Flatten -> Linear -> ReLU
    policy.self_encoder.0           Linear over the agent's own cell (the centre of the box)
    policy.actor.{0,1,...}          one Linear per action head (action type, action argument)
    policy.value                    Linear(hidden, 1)
    lstm.*  and  cell.*             an LSTM and an LSTMCell that share the same weights

Every size is a constructor argument; `architecture.infer_architecture` reads them from a state
dict. The defaults are Metta's (22 features, 11x11 box, 128 CNN channels, 512 hidden, heads 9 and 10).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]


def conv_output(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


class Policy(nn.Module):
    """Encodes a feature box `[B, C, W, W]` into the LSTM input and decodes LSTM output into heads."""

    def __init__(
        self,
        obs_channels: int = 22,
        cnn_channels: int | Sequence[int] = 128,
        hidden_size: int = 512,
        window: int = 11,
        kernel_sizes: Sequence[int] = (5, 3),
        strides: Sequence[int] = (3, 1),
        cnn_hidden: int | None = None,
        self_hidden: int | None = None,
        action_heads: Sequence[int] = (9, 10),
    ):
        super().__init__()
        channels = [cnn_channels, cnn_channels] if isinstance(cnn_channels, int) else list(cnn_channels)
        if len(channels) != 2 or len(kernel_sizes) != 2 or len(strides) != 2:
            raise ValueError("cnn_channels, kernel_sizes and strides describe exactly two conv layers")
        side = conv_output(conv_output(window, kernel_sizes[0], strides[0]), kernel_sizes[1], strides[1])
        if side < 1:
            raise ValueError(f"a {window}x{window} box is too small for kernels {list(kernel_sizes)}")
        self.window = window
        self.hidden_size = hidden_size
        self.cnn_hidden = cnn_hidden if cnn_hidden is not None else hidden_size // 2
        self.self_hidden = self_hidden if self_hidden is not None else hidden_size // 2
        # Upstream's shape, (1, C, 1, 1), so state dicts load both ways with a strict load.
        self.register_buffer("max_vec", torch.ones(1, obs_channels, 1, 1))
        self.network = nn.Sequential(
            nn.Conv2d(obs_channels, channels[0], kernel_sizes[0], stride=strides[0]),
            nn.ReLU(),
            nn.Conv2d(channels[0], channels[1], kernel_sizes[1], stride=strides[1]),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(channels[1] * side * side, self.cnn_hidden),
            nn.ReLU(),
        )
        self.self_encoder = nn.Sequential(nn.Linear(obs_channels, self.self_hidden), nn.ReLU())
        self.actor = nn.ModuleList(nn.Linear(hidden_size, size) for size in action_heads)
        self.value = nn.Linear(hidden_size, 1)

    @property
    def scale(self) -> torch.Tensor:
        """`1 / max_vec` per channel; 0 for a channel the checkpoint never saw (max_vec 0), not inf."""
        max_vec = self.max_vec.flatten()
        return torch.where(max_vec > 0, 1.0 / max_vec.clamp(min=1e-12), 0.0)

    @property
    def obs_channels(self) -> int:
        return self.max_vec.numel()

    @property
    def encoded_size(self) -> int:
        return self.cnn_hidden + self.self_hidden

    @property
    def action_heads(self) -> list[int]:
        return [head.out_features for head in self.actor]

    def encode(self, box: torch.Tensor) -> torch.Tensor:
        # Features that the checkpoint never saw (max_vec 0) contribute nothing rather than inf.
        features = box * self.scale[None, :, None, None]
        centre = self.window // 2
        own = self.self_encoder(features[:, :, centre, centre])
        return torch.cat([own, self.network(features)], dim=1)

    def decode(self, hidden: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        return [head(hidden) for head in self.actor], self.value(hidden).squeeze(-1)


class Recurrent(nn.Module):
    """An LSTM core between the policy's encoder and its heads (PufferLib's LSTM wrapper).

    `lstm` (for whole sequences, in training) and `cell` (one step, in evaluation) share weights.
    """

    def __init__(self, policy: Policy, input_size: int = 512, hidden_size: int = 512):
        super().__init__()
        if policy.encoded_size != input_size:
            raise ValueError(
                f"the policy encodes {policy.encoded_size} values but the LSTM input_size is {input_size}"
            )
        if policy.hidden_size != hidden_size:
            raise ValueError(
                f"the policy's heads read {policy.hidden_size} values but the LSTM hidden_size is "
                f"{hidden_size}"
            )
        self.policy = policy
        self.hidden_size = hidden_size
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.cell = nn.LSTMCell(input_size, hidden_size)
        self.cell.weight_ih = self.lstm.weight_ih_l0
        self.cell.weight_hh = self.lstm.weight_hh_l0
        self.cell.bias_ih = self.lstm.bias_ih_l0
        self.cell.bias_hh = self.lstm.bias_hh_l0

    @property
    def window(self) -> int:
        return self.policy.window

    @property
    def obs_channels(self) -> int:
        return self.policy.obs_channels

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        zeros = torch.zeros(batch, self.hidden_size, device=device)
        return zeros, zeros.clone()

    def step(self, box: torch.Tensor, state: State) -> tuple[list[torch.Tensor], torch.Tensor, State]:
        """One step for a batch of agents: head logits, value, new (hidden, cell) state."""
        return self.advance(self.policy.encode(box), state)

    def advance(self, encoded: torch.Tensor, state: State) -> tuple[list[torch.Tensor], torch.Tensor, State]:
        """`step` from the encoder's output (`Policy.encode` or a `SparseEncoder`)."""
        hidden, cell = self.cell(encoded, state)
        logits, value = self.policy.decode(hidden)
        return logits, value, (hidden, cell)

    def sequence(self, boxes: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Whole sequences `[T, B, C, W, W]` from a zero state: logits `[T, B, n]`, values `[T, B]`."""
        steps, batch = boxes.shape[:2]
        encoded = self.policy.encode(boxes.flatten(0, 1)).view(steps, batch, -1)
        hidden, _ = self.lstm(encoded)
        logits, value = self.policy.decode(hidden.flatten(0, 1))
        return [head.view(steps, batch, -1) for head in logits], value.view(steps, batch)
