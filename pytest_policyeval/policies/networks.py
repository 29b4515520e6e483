"""Policy network architectures, by name, so a checkpoint can say what to rebuild.

A checkpoint stores an architecture name and its keyword arguments; `build_network` makes the
module again. New architectures register with `@register("name")`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}

State = tuple[torch.Tensor, torch.Tensor]


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def add(cls: type[nn.Module]) -> type[nn.Module]:
        ARCHITECTURES[name] = cls
        return cls

    return add


def build_network(name: str, config: dict) -> nn.Module:
    if name not in ARCHITECTURES:
        raise KeyError(f"unknown architecture '{name}'; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name](**config)


@register("token_cnn_lstm")
class TokenCNNLSTM(nn.Module):
    """A small CNN over the egocentric box plus an MLP over global features, then an LSTM cell.

    Same shape of idea as Metta's external "Recurrent" policy, sized for CPU evaluation.
    """

    def __init__(
        self,
        num_features: int,
        num_tags: int,
        num_actions: int,
        window: int = 11,
        cnn_channels: int = 32,
        hidden_size: int = 128,
        recurrent: bool = True,
    ):
        super().__init__()
        self.window = window
        self.hidden_size = hidden_size
        self.recurrent = recurrent
        in_channels = num_features + num_tags
        reduced = math.ceil(window / 2)
        self.register_buffer("obs_scale", torch.ones(num_features))
        self.cnn = nn.Sequential(
            nn.Conv2d(in_channels, cnn_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(cnn_channels, cnn_channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(cnn_channels * reduced * reduced, hidden_size),
            nn.ReLU(),
        )
        self.global_encoder = nn.Sequential(nn.Linear(num_features, hidden_size), nn.ReLU())
        self.core = (
            nn.LSTMCell(2 * hidden_size, hidden_size)
            if recurrent
            else nn.Sequential(nn.Linear(2 * hidden_size, hidden_size), nn.ReLU())
        )
        self.actor = nn.Linear(hidden_size, num_actions)
        self.value = nn.Linear(hidden_size, 1)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        zeros = torch.zeros(batch, self.hidden_size, device=device)
        return zeros, zeros.clone()

    def forward(
        self, box: torch.Tensor, globals_: torch.Tensor, state: State
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        features = torch.cat([self.cnn(box), self.global_encoder(globals_)], dim=1)
        if self.recurrent:
            hidden, cell = self.core(features, state)
            state = (hidden, cell)
        else:
            hidden = self.core(features)
        return self.actor(hidden), self.value(hidden).squeeze(-1), state
