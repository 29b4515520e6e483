"""The state-dict layouts Metta external policies were saved in, brought to one.

    puffer3         PufferLib 3.0's LSTMWrapper (Metta from June 2025): `policy.*`, `lstm.*_l0`
                    and the same tensors again as `cell.*` (the LSTMCell shares them)
    puffer2         a PufferLib 2.0-era wrapper that subclassed nn.LSTM: its LSTM tensors at the
                    top level (`weight_ih_l0`, ...) beside `policy.*` and `cell.*`
    recurrent-fork  Metta's January 2025 PufferLib fork: the LSTM as `recurrent.*`, no cell

Each is renamed to puffer3's keys. `policy.max_vec` is upstream's (1, C, 1, 1); files this
project wrote before stored (C,), which is reshaped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from pytest_policyeval.policies.base import PolicyLoadError

log = logging.getLogger(__name__)

LSTM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
LAYOUTS = {
    "puffer3": "PufferLib 3.0 (lstm.* and cell.*)",
    "puffer2": "PufferLib 2.0-era (LSTM tensors at the top level)",
    "recurrent-fork": "Metta's January 2025 PufferLib fork (recurrent.*)",
}


def detect_layout(state: Mapping[str, torch.Tensor], source: str) -> str:
    if not any(key.startswith("policy.") for key in state):
        stems = sorted({key.split(".", 1)[0] for key in state})[:8]
        raise PolicyLoadError(
            f"{source}: not a Metta external policy: no 'policy.*' tensors (top-level names: {stems}); "
            "Metta/PufferLib checkpoints are torch.save(model.state_dict()) of a Recurrent around a Policy"
        )
    if any(key.startswith("recurrent.") for key in state):
        return "recurrent-fork"
    if "weight_ih_l0" in state:
        return "puffer2"
    return "puffer3"


def _lstm_prefix(layout: str) -> str:
    return {"puffer3": "lstm.", "puffer2": "", "recurrent-fork": "recurrent."}[layout]


def to_puffer3(state: Mapping[str, torch.Tensor], source: str) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict in PufferLib 3.0's keys, and the layout it was saved in."""
    layout = detect_layout(state, source)
    state = dict(state)
    prefix = _lstm_prefix(layout)
    if any(key.startswith(f"{prefix}weight_ih_l1") for key in state):
        raise PolicyLoadError(
            f"{source}: a {LAYOUTS[layout]} checkpoint with a multi-layer LSTM; Metta's external "
            "policies have one layer"
        )
    for name in LSTM_NAMES:
        lstm_key, cell_key = f"lstm.{name}_l0", f"cell.{name}"
        saved = state.pop(f"{prefix}{name}_l0", None)
        if saved is not None:
            state[lstm_key] = saved
        # The LSTM and the cell are one set of tensors saved twice; either copy is enough.
        if lstm_key in state and cell_key in state:
            same = state[lstm_key].shape == state[cell_key].shape and torch.equal(
                state[lstm_key], state[cell_key]
            )
            if not same:
                raise PolicyLoadError(
                    f"{source}: '{lstm_key}' and '{cell_key}' should be one shared tensor but differ"
                )
        elif lstm_key in state:
            state[cell_key] = state[lstm_key]
        elif cell_key in state:
            state[lstm_key] = state[cell_key]
    max_vec = state.get("policy.max_vec")
    if max_vec is not None and max_vec.dim() == 1:  # this project's files before upstream's shape
        state["policy.max_vec"] = max_vec.view(1, -1, 1, 1)
    if layout != "puffer3":
        log.warning("%s: read as a %s checkpoint", source, LAYOUTS[layout])
    return state, layout
