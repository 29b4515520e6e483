"""Producer-layout fixtures for Metta "external" (PufferLib-wrapped) policy checkpoints.

Written independently of this project's own classes: this module imports only torch, numpy and the
standard library, never ``pytest_policyeval``, so a test can compare the project against it.

Sources, read at these commits:

* Metta-AI/metta ``8a445b65c0017458316239acc0055aefd9ebbfe6`` (2025-06-27, "updated external example.py to
  match pufferlib 3.0"), file ``metta/agent/external/example.py`` -- the "june" ``Policy`` and
  ``Recurrent(pufferlib.models.LSTMWrapper)`` whose ``forward`` steps ``self.cell`` on token observations.
* Metta-AI/metta ``4d84e5f694dabd3da35cefaa4bb80db5669e82b8`` (2025-07-23, "example.py uglyness moved to
  puffer_policy (#1632)"), file ``agent/src/metta/agent/external/example.py`` -- the "july" ``Policy``: same
  layers and ``max_vec``; ``encode_observations`` adds a bounds mask; ``Recurrent`` no longer overrides
  ``forward`` (PufferLib 3.0's ``LSTMWrapper.forward_eval`` does the same cell step).
* Metta-AI/metta ``8a445b65c0:metta/rl/policy.py`` -- ``load_pytorch_policy``: ``torch.load(path,
  weights_only=True)`` then a strict ``policy.load_state_dict(weights)``; reads ``policy.actor.{0,1}.weight``
  and ``policy.network.0.weight`` shapes.
* PufferLib 3.0 ``pufferlib/models.py`` ``LSTMWrapper`` (the class as published in
  PufferLib 3.0; Metta pinned Metta-AI/PufferLib rev ``dcd597ef1a``): stores ``self.policy``, re-inits
  the parameters present at that point (only the policy's: biases 0, weights with ndim >= 2 orthogonal,
  ``layer_norm`` skipped), then ``self.lstm = nn.LSTM(input_size, hidden_size)`` (default init, NOT
  re-initialised) and ``self.cell = nn.LSTMCell(...)`` whose ``weight_ih/weight_hh/bias_ih/bias_hh`` are set
  to the lstm's ``*_l0`` Parameters, so ``state_dict()`` lists both ``lstm.*_l0`` and ``cell.*`` (same
  storage).
* Metta-AI/PufferLib branch ``metta`` (``807ffcd88e``, 2025-01-26) ``pufferlib/models.py`` ``LSTMWrapper``:
  ``self.recurrent = nn.LSTM(input_size, hidden_size, num_layers)`` with orthogonal weights / zero biases,
  no cell -> keys ``recurrent.weight_ih_l0`` ...
* A PufferLib 2.x-era ``pufferlib/models.py`` (as published) with ``class LSTMWrapper(nn.LSTM)``:
  ``super().__init__(input_size, hidden_size)`` first, so the LSTM weights are top-level ``weight_ih_l0`` ...
  and come FIRST in ``state_dict()``, followed by ``policy.*`` and the tied ``cell.*``.

State-dict order of the 3.0 layout (23 keys for two action heads): ``policy.max_vec`` comes first among the
policy keys because ``Module._save_to_state_dict`` writes a module's own buffers before its children, then
``policy.network.{0,2,5}``, ``policy.self_encoder.0``, ``policy.actor.{i}``, ``policy.value``,
``lstm.{weight_ih,weight_hh,bias_ih,bias_hh}_l0``, ``cell.{weight_ih,weight_hh,bias_ih,bias_hh}``.

What upstream's ``encode_observations`` does with token observations ``[B, M, 3]`` (both commits):

1. ``token_observations[token_observations == 255] = 0`` -- IN PLACE on the caller's tensor (no copy is made
   for 3-D input), and on every byte: a coordinate, feature id or value of 255 becomes 0.
2. ``coords_byte = tokens[..., 0].to(uint8)``; x = ``(coords >> 4) & 0xF`` indexes box dim 2, y =
   ``coords & 0xF`` box dim 3; feature ``tokens[..., 1].long()`` indexes dim 1; value ``tokens[..., 2]``.
3. ``valid_tokens = coords_byte != 0xFF`` -- dead code for uint8 input, because step 1 already turned every
   0xFF into 0. The padding token ``[255, 255, 255]`` therefore becomes ``[0, 0, 0]``, passes the mask and
   writes value 0 into ``box[b, 0, 0, 0]`` (feature 0, cell x=0, y=0). Since padding follows the real tokens,
   it erases any real feature-0 token at cell (0, 0).
4. June has no other mask: a feature id >= 22 or an x/y nibble >= 11 raises ``IndexError`` on CPU (a
   device-side assert on CUDA). July adds ``(x < 11) & (y < 11) & (feature < 22)`` and silently drops them.
5. ``box[b_idx, f_idx, x_idx, y_idx] = values`` -- an index_put without accumulate. For duplicate
   (b, feature, x, y) PyTorch leaves the winner unspecified; CPU gives the LATER token. The reference below
   defines it as "later token wins" with an explicit ordered loop.
6. ``features = box / max_vec``; ``self_encoder(features[:, :, 5, 5])``; conv stack; ``cat([self, cnn])``.
"""

from __future__ import annotations

import functools
import io
import math
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NUM_LAYERS = 22
OBS_WIDTH = 11
OBS_HEIGHT = 11
CENTER = 5
# Policy.max_vec in both commits ("Updated max_vec from PufferLib torch.py"), stored as shape (1, 22, 1, 1).
UPSTREAM_MAX_VEC = (
    9.0, 1.0, 1.0, 10.0, 3.0, 254.0, 1.0, 1.0, 235.0, 8.0, 9.0,
    250.0, 29.0, 1.0, 1.0, 8.0, 1.0, 1.0, 6.0, 3.0, 1.0, 2.0,
)  # fmt: skip
LAYOUTS = ("puffer3", "recurrent_fork", "puffer2")
VERSIONS = ("june", "july")
LSTM_SUFFIXES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
# Bias perturbation added after upstream's zero-bias init so that a dropped bias changes the outputs.
BIAS_NOISE = 0.1


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


def _layer_init(layer: nn.Module, std: float = math.sqrt(2), bias_const: float = 0.0) -> nn.Module:
    """pufferlib.pytorch.layer_init (CleanRL's): orthogonal weight with gain ``std``, constant bias."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias_const)
    return layer


def _no_init(layer: nn.Module, std: float = 0.0) -> nn.Module:
    """Keeps torch's default init: for modules whose values are loaded right after construction."""
    return layer


# --------------------------------------------------------------------------------------------------------
# Modules mirroring upstream's structure: state_dict() gives the producer's keys and order by construction
# --------------------------------------------------------------------------------------------------------


class UpstreamPolicy(nn.Module):
    """Mirror of ``Policy`` in metta/agent/external/example.py (June and July commits are identical here)."""

    def __init__(
        self,
        cnn_channels: int = 128,
        hidden_size: int = 512,
        action_nvec: Sequence[int] = (9, 10),
        version: str = "june",
        init: bool = True,
    ):
        super().__init__()
        _check_choice("version", version, VERSIONS)
        li = _layer_init if init else _no_init
        self.version = version
        self.hidden_size = hidden_size
        self.is_continuous = False
        self.out_width = OBS_WIDTH
        self.out_height = OBS_HEIGHT
        self.num_layers = NUM_LAYERS

        self.network = nn.Sequential(
            li(nn.Conv2d(self.num_layers, cnn_channels, 5, stride=3)),
            nn.ReLU(),
            li(nn.Conv2d(cnn_channels, cnn_channels, 3, stride=1)),
            nn.ReLU(),
            nn.Flatten(),
            li(nn.Linear(cnn_channels, hidden_size // 2)),
            nn.ReLU(),
        )
        self.self_encoder = nn.Sequential(
            li(nn.Linear(self.num_layers, hidden_size // 2)),
            nn.ReLU(),
        )
        self.register_buffer("max_vec", torch.tensor(UPSTREAM_MAX_VEC)[None, :, None, None])
        self.actor = nn.ModuleList([li(nn.Linear(hidden_size, int(n)), std=0.01) for n in action_nvec])
        self.value = li(nn.Linear(hidden_size, 1), std=1)

    def encode_observations(self, observations: torch.Tensor, state=None) -> torch.Tensor:
        """Upstream's code path, index_put included (but on a copy: upstream mutates its input)."""
        token_observations = observations.clone()
        if token_observations.dim() != 3:
            token_observations = token_observations.reshape(-1, *token_observations.shape[-2:])
        batch = token_observations.shape[0]
        token_observations[token_observations == 255] = 0
        coords_byte = token_observations[..., 0].to(torch.uint8)
        x_idx = ((coords_byte >> 4) & 0x0F).long()
        y_idx = (coords_byte & 0x0F).long()
        atr_idx = token_observations[..., 1].long()
        atr_values = token_observations[..., 2].float()
        box = torch.zeros((batch, NUM_LAYERS, self.out_width, self.out_height), dtype=atr_values.dtype)
        batch_idx = torch.arange(batch).unsqueeze(-1).expand_as(atr_values)
        valid = coords_byte != 0xFF
        if self.version == "july":
            valid = valid & (x_idx < self.out_width) & (y_idx < self.out_height)
            valid = valid & (atr_idx < NUM_LAYERS)
        box[batch_idx[valid], atr_idx[valid], x_idx[valid], y_idx[valid]] = atr_values[valid]
        features = box / self.max_vec
        self_features = self.self_encoder(features[:, :, CENTER, CENTER])
        cnn_features = self.network(features)
        return torch.cat([self_features, cnn_features], dim=1)

    def decode_actions(self, hidden: torch.Tensor):
        logits = [dec(hidden) for dec in self.actor]
        value = self.value(hidden)
        return logits, value


def _puffer_reinit(named_parameters) -> None:
    """The init loop of PufferLib's LSTMWrapper (3.0 and 2.x variants share it)."""
    for name, param in named_parameters:
        if "layer_norm" in name:
            continue
        if "bias" in name:
            nn.init.constant_(param, 0)
        elif "weight" in name and param.ndim >= 2:
            nn.init.orthogonal_(param, 1.0)


def _tie_cell(cell: nn.LSTMCell, weight_ih, weight_hh, bias_ih, bias_hh) -> None:
    cell.weight_ih = weight_ih
    cell.weight_hh = weight_hh
    cell.bias_ih = bias_ih
    cell.bias_hh = bias_hh


def _unbatched_state(lstm_state, batch: int, hidden_size: int):
    if lstm_state is None:
        zeros = torch.zeros(batch, hidden_size)
        return zeros, zeros.clone()
    h, c = lstm_state
    if h.dim() == 3:  # (num_layers=1, B, H) as nn.LSTM returns it
        h, c = h[0], c[0]
    return h, c


class Puffer3Recurrent(nn.Module):
    """Mirror of PufferLib 3.0 ``LSTMWrapper`` (metta's ``Recurrent`` subclasses it): keys lstm.* + cell.*."""

    def __init__(
        self, policy: UpstreamPolicy, input_size: int = 512, hidden_size: int = 512, init: bool = True
    ):
        super().__init__()
        self.policy = policy
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.is_continuous = policy.is_continuous
        if init:  # runs before self.lstm exists: re-inits the policy's parameters only
            _puffer_reinit(self.named_parameters())
        self.lstm = nn.LSTM(input_size, hidden_size)
        self.cell = nn.LSTMCell(input_size, hidden_size)
        lstm = self.lstm
        _tie_cell(self.cell, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)

    def forward_eval(self, observations: torch.Tensor, lstm_state=None):
        """One inference step as upstream runs it: encode, ``self.cell`` step, decode."""
        hidden = self.policy.encode_observations(observations)
        h, c = self.cell(hidden, None if lstm_state is None else _unbatched_state(lstm_state, 0, 0))
        logits, value = self.policy.decode_actions(h)
        return logits, value, (h, c)


class ForkRecurrent(nn.Module):
    """Mirror of the Jan 2025 Metta-AI/PufferLib fork's ``LSTMWrapper``: ``self.recurrent`` LSTM, no cell."""

    def __init__(
        self, policy: UpstreamPolicy, input_size: int = 512, hidden_size: int = 512, init: bool = True
    ):
        super().__init__()
        self.policy = policy
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.recurrent = nn.LSTM(input_size, hidden_size, 1)
        for name, param in self.recurrent.named_parameters() if init else ():
            if "bias" in name:
                nn.init.constant_(param, 0)
            elif "weight" in name:
                nn.init.orthogonal_(param, 1.0)

    def forward_eval(self, observations: torch.Tensor, lstm_state=None):
        hidden = self.policy.encode_observations(observations)
        batch = hidden.shape[0]
        h0, c0 = _unbatched_state(lstm_state, batch, self.hidden_size)
        out, (h, c) = self.recurrent(hidden[None], (h0[None], c0[None]))
        logits, value = self.policy.decode_actions(out[0])
        return logits, value, (h[0], c[0])


class Puffer2Recurrent(nn.LSTM):
    """Mirror of the PufferLib 2.x ``class LSTMWrapper(nn.LSTM)``: top-level ``weight_ih_l0`` ... + cell.*."""

    def __init__(
        self, policy: UpstreamPolicy, input_size: int = 512, hidden_size: int = 512, init: bool = True
    ):
        super().__init__(input_size, hidden_size)
        self.policy = policy
        self.is_continuous = policy.is_continuous
        if init:  # 2.x: includes the LSTM's own weights
            _puffer_reinit(self.named_parameters())
        self.cell = nn.LSTMCell(input_size, hidden_size)
        _tie_cell(self.cell, self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0)

    def forward_eval(self, observations: torch.Tensor, lstm_state=None):
        hidden = self.policy.encode_observations(observations)
        h, c = self.cell(hidden, None if lstm_state is None else _unbatched_state(lstm_state, 0, 0))
        logits, value = self.policy.decode_actions(h)
        return logits, value, (h, c)


_WRAPPERS = {"puffer3": Puffer3Recurrent, "recurrent_fork": ForkRecurrent, "puffer2": Puffer2Recurrent}


def rename_layout(state: dict[str, torch.Tensor], layout: str) -> OrderedDict[str, torch.Tensor]:
    """Rename a ``puffer3`` state dict (lstm.* + cell.*) to ``layout``'s keys, in that layout's own order."""
    _check_choice("layout", layout, LAYOUTS)
    policy_items = [(k, v) for k, v in state.items() if k.startswith("policy.")]
    lstm = [(f"{s}_l0", state[f"lstm.{s}_l0"]) for s in LSTM_SUFFIXES]
    cell = [(f"cell.{s}", state[f"cell.{s}"]) for s in LSTM_SUFFIXES]
    if layout == "puffer3":
        items = policy_items + [(f"lstm.{k}", v) for k, v in lstm] + cell
    elif layout == "recurrent_fork":
        items = policy_items + [(f"recurrent.{k}", v) for k, v in lstm]
    else:
        items = lstm + policy_items + cell
    return OrderedDict(items)


@functools.lru_cache(maxsize=16)
def _canonical_values(
    cnn_channels: int, hidden_size: int, action_nvec: tuple[int, ...], seed: int
) -> OrderedDict[str, torch.Tensor]:
    """The seeded ``puffer3`` tensors, built once per argument tuple (orthogonal init is the slow part)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = UpstreamPolicy(cnn_channels, hidden_size, action_nvec)
        module = Puffer3Recurrent(policy, hidden_size, hidden_size)
        with torch.no_grad():
            for name, param in module.named_parameters():  # deduplicated: cell.* is lstm.*_l0
                if "bias" in name:
                    param.add_(BIAS_NOISE * torch.randn_like(param))
    return module.state_dict()


def upstream_module(
    cnn_channels: int = 128,
    hidden_size: int = 512,
    action_nvec: Sequence[int] = (9, 10),
    seed: int = 0,
    layout: str = "puffer3",
    version: str = "june",
) -> nn.Module:
    """The producer's ``Recurrent(env, Policy(env, cnn_channels=C, hidden_size=H), H, H)``, seeded, eval mode.

    Values: built like upstream under ``torch.manual_seed(seed)`` (the global RNG state is restored after):
    layer_init, the wrapper's re-init (policy weights orthogonal, biases 0), default nn.LSTM init; then every
    bias (policy and LSTM) gets ``BIAS_NOISE * N(0, 1)`` added so that bias bugs show. All layouts carry the
    same values under their own keys: the returned module is a fresh instance of the layout's wrapper class
    (Puffer3Recurrent / ForkRecurrent / Puffer2Recurrent) filled by ``load_state_dict(rename_layout(values,
    layout), strict=True)``. ``version`` only selects the encode path of ``module.forward_eval`` (June: no
    bounds mask; July: bounds mask); the parameters do not depend on it.
    """
    _check_choice("layout", layout, LAYOUTS)
    _check_choice("version", version, VERSIONS)
    nvec = tuple(int(n) for n in action_nvec)
    values = rename_layout(_canonical_values(cnn_channels, hidden_size, nvec, seed), layout)
    with torch.random.fork_rng(devices=[]):
        policy = UpstreamPolicy(cnn_channels, hidden_size, nvec, version, init=False)
        module = _WRAPPERS[layout](policy, hidden_size, hidden_size, init=False)
    module.load_state_dict(values, strict=True)
    return module.eval()


def upstream_state_dict(
    cnn_channels: int = 128,
    hidden_size: int = 512,
    action_nvec: Sequence[int] = (9, 10),
    seed: int = 0,
    layout: str = "puffer3",
) -> dict[str, torch.Tensor]:
    """``upstream_module(...).state_dict()``: the producer's keys, order, shapes and dtypes (all float32).

    It is the OrderedDict torch.save would write; in ``puffer3``/``puffer2`` the ``cell.*`` entries share
    storage with the LSTM entries, as in the producer's files.
    """
    return upstream_module(cnn_channels, hidden_size, action_nvec, seed, layout).state_dict()


def expected_shapes(
    cnn_channels: int = 128,
    hidden_size: int = 512,
    action_nvec: Sequence[int] = (9, 10),
    layout: str = "puffer3",
) -> OrderedDict[str, tuple[int, ...]]:
    """Key -> shape of the producer's state dict, written out by hand (independent of the modules above)."""
    c, h, half = cnn_channels, hidden_size, hidden_size // 2
    policy = [
        ("policy.max_vec", (1, NUM_LAYERS, 1, 1)),
        ("policy.network.0.weight", (c, NUM_LAYERS, 5, 5)),
        ("policy.network.0.bias", (c,)),
        ("policy.network.2.weight", (c, c, 3, 3)),
        ("policy.network.2.bias", (c,)),
        ("policy.network.5.weight", (half, c)),
        ("policy.network.5.bias", (half,)),
        ("policy.self_encoder.0.weight", (half, NUM_LAYERS)),
        ("policy.self_encoder.0.bias", (half,)),
    ]
    for i, n in enumerate(action_nvec):
        policy += [(f"policy.actor.{i}.weight", (int(n), h)), (f"policy.actor.{i}.bias", (int(n),))]
    policy += [("policy.value.weight", (1, h)), ("policy.value.bias", (1,))]
    lstm_shapes = {"weight_ih": (4 * h, h), "weight_hh": (4 * h, h), "bias_ih": (4 * h,), "bias_hh": (4 * h,)}
    lstm = [(f"{s}_l0", lstm_shapes[s]) for s in LSTM_SUFFIXES]
    cell = [(f"cell.{s}", lstm_shapes[s]) for s in LSTM_SUFFIXES]
    _check_choice("layout", layout, LAYOUTS)
    if layout == "puffer3":
        return OrderedDict(policy + [(f"lstm.{k}", v) for k, v in lstm] + cell)
    if layout == "recurrent_fork":
        return OrderedDict(policy + [(f"recurrent.{k}", v) for k, v in lstm])
    return OrderedDict(lstm + policy + cell)


def write_upstream(path: str | Path, **kwargs) -> Path:
    """``torch.save(upstream_state_dict(**kwargs), path)`` -- a well-formed producer checkpoint."""
    path = Path(path)
    torch.save(upstream_state_dict(**kwargs), path)
    return path


# --------------------------------------------------------------------------------------------------------
# Reference forward, transcribed from upstream with torch.nn.functional on the raw state-dict tensors
# --------------------------------------------------------------------------------------------------------


def random_tokens(
    batch: int = 2, num_tokens: int = 40, max_tokens: int = 64, seed: int = 0, center_tokens: int = 4
) -> torch.Tensor:
    """Token observations ``[batch, max_tokens, 3]`` uint8: ``num_tokens`` real tokens, then [255]*3 padding.

    Real tokens have distinct (feature, x, y) per row, x/y in 0..10, feature in 0..21, value in 1..254 (never
    255, never 0); the first ``center_tokens`` sit on the centre cell (5, 5) so the self encoder sees them.
    """
    if num_tokens > max_tokens:
        raise ValueError("num_tokens must be <= max_tokens")
    rng = np.random.default_rng(seed)
    out = np.full((batch, max_tokens, 3), 255, dtype=np.uint8)
    others = [
        (f, x, y)
        for f in range(NUM_LAYERS)
        for x in range(OBS_WIDTH)
        for y in range(OBS_HEIGHT)
        if (x, y) != (CENTER, CENTER)
    ]
    for b in range(batch):
        centre = rng.choice(NUM_LAYERS, size=center_tokens, replace=False)
        positions = [(int(f), CENTER, CENTER) for f in centre]
        picks = rng.choice(len(others), size=num_tokens - len(positions), replace=False)
        positions += [others[int(i)] for i in picks]
        for m, (f, x, y) in enumerate(positions):
            out[b, m] = ((x << 4) | y, f, int(rng.integers(1, 255)))
    return torch.from_numpy(out)


def reference_box(tokens, version: str = "june") -> torch.Tensor:
    """The raw observation box ``[B, 22, 11, 11]`` float32 that upstream builds, before ``/ max_vec``.

    ``tokens``: ``[B, M, 3]`` (torch or numpy, normally uint8). Not modified (upstream modifies its input).
    Duplicate (b, feature, x, y): the later token wins, by an explicit ordered loop. June raises IndexError
    for a feature >= 22 or an x/y >= 11, as upstream's index_put does on CPU; July drops such tokens.
    """
    _check_choice("version", version, VERSIONS)
    tok = torch.as_tensor(np.asarray(tokens)) if not isinstance(tokens, torch.Tensor) else tokens
    if tok.dim() != 3 or tok.shape[-1] != 3:
        raise ValueError(f"expected token observations [B, M, 3], got shape {tuple(tok.shape)}")
    tok = tok.clone()
    tok[tok == 255] = 0  # upstream: every byte equal to 255 (coord, feature or value) becomes 0
    coords = tok[..., 0].to(torch.uint8)
    xs = ((coords >> 4) & 0x0F).long()
    ys = (coords & 0x0F).long()
    feats = tok[..., 1].long()
    vals = tok[..., 2].float()
    # Upstream's only mask in June. After the replacement above no uint8 coordinate can still be 0xFF, so it
    # keeps everything -- including padding [255, 255, 255], now [0, 0, 0], which writes 0.0 into feature 0
    # at cell (0, 0) and so erases a real feature-0 token there (padding comes after real tokens).
    valid = coords != 0xFF
    if version == "july":
        valid = valid & (xs < OBS_WIDTH) & (ys < OBS_HEIGHT) & (feats < NUM_LAYERS)
    batch, count = feats.shape
    box = np.zeros((batch, NUM_LAYERS, OBS_WIDTH, OBS_HEIGHT), dtype=np.float32)
    valid_l, feats_l, xs_l, ys_l, vals_l = (t.tolist() for t in (valid, feats, xs, ys, vals))
    limits = ((1, NUM_LAYERS), (2, OBS_WIDTH), (3, OBS_HEIGHT))
    for b in range(batch):
        for m in range(count):  # row-major order == index_put's order; the later write wins
            if not valid_l[b][m]:
                continue
            index = (feats_l[b][m], xs_l[b][m], ys_l[b][m])
            for (dim, size), i in zip(limits, index, strict=True):
                if i >= size:
                    raise IndexError(f"index {i} is out of bounds for dimension {dim} with size {size}")
            box[b, index[0], index[1], index[2]] = vals_l[b][m]
    return torch.from_numpy(box)


def _find_lstm(state: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    for prefix, fmt in (("lstm.", "{}_l0"), ("recurrent.", "{}_l0"), ("", "{}_l0"), ("cell.", "{}")):
        keys = [prefix + fmt.format(s) for s in LSTM_SUFFIXES]
        if all(k in state for k in keys):
            return [state[k].float() for k in keys]
    raise KeyError("no LSTM tensors (lstm.*_l0, recurrent.*_l0, *_l0 or cell.*) in state")


def reference_forward(
    state: dict[str, torch.Tensor], tokens, lstm_state=None, version: str = "june"
) -> tuple[list[torch.Tensor], torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """One upstream inference step on raw state-dict tensors: encode_observations, cell step, decode_actions.

    ``state``: a producer state dict in any of the three layouts. ``lstm_state``: None (zeros, as
    nn.LSTMCell does) or ``(h, c)`` each ``[B, H]`` or ``[1, B, H]``. Returns ``(logits, value, (h, c))``:
    one ``[B, n]`` tensor per action head, value ``[B, 1]``, new state ``[B, H]`` each (upstream sets
    ``lstm_h = hidden = h``).
    """
    p = {k[len("policy.") :]: v.float() for k, v in state.items() if k.startswith("policy.")}
    w_ih, w_hh, b_ih, b_hh = _find_lstm(state)
    with torch.no_grad():
        features = reference_box(tokens, version) / p["max_vec"]
        self_features = F.relu(
            F.linear(features[:, :, CENTER, CENTER], p["self_encoder.0.weight"], p["self_encoder.0.bias"])
        )
        x = F.relu(F.conv2d(features, p["network.0.weight"], p["network.0.bias"], stride=3))
        x = F.relu(F.conv2d(x, p["network.2.weight"], p["network.2.bias"], stride=1))
        x = F.relu(F.linear(x.flatten(1), p["network.5.weight"], p["network.5.bias"]))
        hidden = torch.cat([self_features, x], dim=1)

        batch, size = hidden.shape[0], w_hh.shape[1]
        h, c = _unbatched_state(lstm_state, batch, size)
        gates = hidden @ w_ih.T + b_ih + h.float() @ w_hh.T + b_hh
        i_gate, f_gate, g_gate, o_gate = gates.chunk(4, dim=1)  # PyTorch's gate order: i, f, g, o
        i_gate, f_gate, o_gate = torch.sigmoid(i_gate), torch.sigmoid(f_gate), torch.sigmoid(o_gate)
        g_gate = torch.tanh(g_gate)
        c_new = f_gate * c.float() + i_gate * g_gate
        h_new = o_gate * torch.tanh(c_new)

        logits = []
        head = 0
        while f"actor.{head}.weight" in p:
            logits.append(F.linear(h_new, p[f"actor.{head}.weight"], p[f"actor.{head}.bias"]))
            head += 1
        value = F.linear(h_new, p["value.weight"], p["value.bias"])
    return logits, value, (h_new, c_new)


# --------------------------------------------------------------------------------------------------------
# Hostile checkpoint builders
# --------------------------------------------------------------------------------------------------------


class _StorageRecord:
    """Stands for storage record ``data/0`` while pickling a forged tensor (see write_huge_claim)."""


class _ForgedTensor:
    """Pickles as ``torch._utils._rebuild_tensor_v2(<storage 0>, 0, shape, contiguous stride, False, {})``."""

    def __init__(self, shape: Sequence[int]):
        self.shape = tuple(int(d) for d in shape)

    def __reduce__(self):
        stride, acc = [], 1
        for dim in reversed(self.shape):
            stride.append(acc)
            acc *= dim
        args = (_StorageRecord(), 0, self.shape, tuple(reversed(stride)), False, OrderedDict())
        return (torch._utils._rebuild_tensor_v2, args)


class _ForgingPickler(pickle.Pickler):
    """Writes the persistent id torch.save writes for a float32 storage, with a numel of our choosing."""

    def __init__(self, file, numel: int):
        super().__init__(file, protocol=2)  # torch.save's DEFAULT_PROTOCOL
        self.numel = numel

    def persistent_id(self, obj):
        if isinstance(obj, _StorageRecord):
            return ("storage", torch.FloatStorage, "0", "cpu", self.numel)
        return None


def write_huge_claim(
    path: str | Path,
    shape: Sequence[int] = (100_000_000, NUM_LAYERS, 5, 5),
    key: str = "policy.network.0.weight",
) -> Path:
    """A ~1 KB checkpoint whose pickle claims a float32 tensor of ``shape`` (default: 220 GB).

    How: ``torch.save({key: torch.zeros(4)})`` writes a real zip (``<stem>/data.pkl``, ``<stem>/data/0``
    holding 16 bytes, ``byteorder``, ``version``, ...). The zip is read back with ``zipfile`` and rewritten,
    every record copied unchanged and stored uncompressed, except ``data.pkl``, replaced by a pickle of the
    form torch writes -- ``{key: _rebuild_tensor_v2(persistent_id('storage', torch.FloatStorage, '0',
    'cpu', numel), 0, shape, stride, False, OrderedDict())}`` -- with numel = prod(shape) (55e9 by default).
    Only the standard globals torch's weights-only unpickler allows appear. With an honest ``shape`` of 4
    elements (e.g. ``(2, 2)``) the same file loads, which shows the rewritten zip is valid.
    """
    path = Path(path)
    torch.save({key: torch.zeros(4)}, path)
    with zipfile.ZipFile(path) as archive:
        records = [(info, archive.read(info.filename)) for info in archive.infolist()]
    numel = math.prod(int(d) for d in shape)
    buffer = io.BytesIO()
    _ForgingPickler(buffer, numel).dump({key: _ForgedTensor(shape)})
    replaced = False
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for info, data in records:
            if info.filename.endswith("/data.pkl"):
                data, replaced = buffer.getvalue(), True
            archive.writestr(info, data)
    if not replaced:
        raise RuntimeError("torch.save wrote no data.pkl record")
    return path


def write_zero_size(path: str | Path, key: str = "policy.network.0.weight", **kwargs) -> Path:
    """Producer layout, but ``key`` (a conv weight by default) has size 0 in its first dimension."""
    state = upstream_state_dict(**kwargs)
    state[key] = torch.empty((0, *state[key].shape[1:]), dtype=state[key].dtype)
    torch.save(state, path)
    return Path(path)


def write_int_weights(
    path: str | Path,
    int_key: str = "policy.network.5.weight",
    bool_key: str = "policy.self_encoder.0.weight",
    **kwargs,
) -> Path:
    """Producer layout (right shapes) with ``int_key`` as int64 and ``bool_key`` as a bool tensor."""
    state = upstream_state_dict(**kwargs)
    state[int_key] = (state[int_key] * 100).round().to(torch.int64)
    state[bool_key] = state[bool_key] > 0
    torch.save(state, path)
    return Path(path)


def write_wrapped(path: str | Path, key: str = "state_dict", **kwargs) -> Path:
    """``{key: producer_state_dict}`` (``key`` typically "state_dict" or "model")."""
    torch.save({key: upstream_state_dict(**kwargs)}, path)
    return Path(path)


def write_lightning_wrapped(path: str | Path, **kwargs) -> Path:
    """Lightning-like ``{"state_dict": producer_state_dict, "epoch": 3, "global_step": 10}``."""
    torch.save({"state_dict": upstream_state_dict(**kwargs), "epoch": 3, "global_step": 10}, path)
    return Path(path)


def write_ambiguous_wrapped(path: str | Path, **kwargs) -> Path:
    """``{"model": state(seed 0), "ema": state(seed 1)}`` -- two different, equally plausible state dicts."""
    kwargs.pop("seed", None)
    model = upstream_state_dict(seed=0, **kwargs)
    ema = upstream_state_dict(seed=1, **kwargs)
    torch.save({"model": model, "ema": ema}, path)
    return Path(path)


def write_empty(path: str | Path) -> Path:
    """A 0-byte file."""
    path = Path(path)
    path.write_bytes(b"")
    return path


class _OpenPayload:
    """Unpickles as ``open(marker, "w")`` (pickled as the global ``io.open``) -- creates the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_pickle_payload(path: str | Path, marker: str | Path, **kwargs) -> Path:
    """Producer state dict plus an entry that, under ``torch.load(weights_only=False)``, creates ``marker``.

    NEVER load this with ``weights_only=False``. ``torch.load(weights_only=True)`` refuses the ``io.open``
    global with ``pickle.UnpicklingError`` before calling anything.
    """
    state = upstream_state_dict(**kwargs)
    state["_payload"] = _OpenPayload(str(marker))
    torch.save(state, path)
    return Path(path)
