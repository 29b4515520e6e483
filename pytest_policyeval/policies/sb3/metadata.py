"""What an SB3 model's `data` says in readable text: its policy class, spaces and network settings.

SB3's `data_to_json` (save_util.py, stable-baselines3 2.9.2) stores an attribute JSON cannot hold
as {":type:": "<class '...'>", ":serialized:": base64 cloudpickle, plus the object's first-level
attributes, as JSON or as `str()` text}. Only that text is read here; ":serialized:" never is.
So the policy class is its `__module__` plus the name in its `__init__`'s repr, a Box's bounds are
numpy's printed arrays, an activation is "<class 'torch.nn.modules.activation.ReLU'>".

Defaults are SB3's per policy class (policies.py, dqn/policies.py, sac/policies.py):
ActorCriticPolicy (PPO, A2C) Tanh and net_arch pi=[64, 64], vf=[64, 64]; DQNPolicy ReLU and
[64, 64]; SACPolicy ReLU and [256, 256]. What cannot be rebuilt without running code the archive
names (custom or CNN features extractors, custom activations, gSDE, image or dict observations)
is refused, naming the file and the cause.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_policyeval.policies.base import PolicyLoadError

ACTOR_CRITIC, DQN, SAC = "actor-critic", "dqn", "sac"
POLICY_CLASSES = {
    ("stable_baselines3.common.policies", "ActorCriticPolicy"): ACTOR_CRITIC,  # PPO/A2C "MlpPolicy"
    ("stable_baselines3.dqn.policies", "DQNPolicy"): DQN,
    ("stable_baselines3.sac.policies", "SACPolicy"): SAC,
}
UNSUPPORTED_CLASSES = {
    "ActorCriticCnnPolicy": "a CNN policy (image observations)",
    "CnnPolicy": "a CNN policy (image observations)",
    "MultiInputActorCriticPolicy": "a MultiInputPolicy (dict observations)",
    "MultiInputPolicy": "a MultiInputPolicy (dict observations)",
    "TD3Policy": "a TD3/DDPG policy",
}
DEFAULT_ACTIVATION = {ACTOR_CRITIC: "Tanh", DQN: "ReLU", SAC: "ReLU"}
DEFAULT_NET_ARCH: dict[str, dict[str, list[int]]] = {
    ACTOR_CRITIC: {"pi": [64, 64], "vf": [64, 64]},
    DQN: {"q": [64, 64]},
    SAC: {"pi": [256, 256], "qf": [256, 256]},
}
# policy_kwargs each policy class takes (its __init__); those not named in NETWORK_KWARGS only
# shape training (optimizer, initialisation), never the actions of given weights.
KWARGS = {
    ACTOR_CRITIC: {
        "net_arch", "activation_fn", "ortho_init", "use_sde", "log_std_init", "full_std", "use_expln",
        "squash_output", "features_extractor_class", "features_extractor_kwargs",
        "share_features_extractor", "normalize_images", "optimizer_class", "optimizer_kwargs",
    },
    DQN: {
        "net_arch", "activation_fn", "features_extractor_class", "features_extractor_kwargs",
        "normalize_images", "optimizer_class", "optimizer_kwargs",
    },
    SAC: {
        "net_arch", "activation_fn", "use_sde", "log_std_init", "use_expln", "clip_mean",
        "features_extractor_class", "features_extractor_kwargs", "normalize_images", "optimizer_class",
        "optimizer_kwargs", "n_critics", "share_features_extractor",
    },
}  # fmt: skip
# Parameter-free, elementwise activations whose default construction is what SB3 calls.
ACTIVATIONS = frozenset({
    "CELU", "ELU", "GELU", "Hardshrink", "Hardsigmoid", "Hardswish", "Hardtanh", "LeakyReLU", "LogSigmoid",
    "Mish", "ReLU", "ReLU6", "SELU", "SiLU", "Sigmoid", "Softplus", "Softshrink", "Softsign", "Tanh",
    "Tanhshrink",
})  # fmt: skip
FLATTEN = "stable_baselines3.common.torch_layers.FlattenExtractor"
DTYPES = frozenset({
    "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "bool",
})  # fmt: skip
CLASS_TEXT = re.compile(r"<class '([A-Za-z_][\w.]*)'>")
INIT_TEXT = re.compile(r"<function ([A-Za-z_]\w*)\.__init__ at 0x[0-9a-fA-F]+>")
SPACE_MODULES = {"gymnasium.spaces", "gym.spaces"}
MAX_LAYERS, MAX_WIDTH, MAX_FEATURES = 64, 1 << 20, 1 << 24


@dataclass(frozen=True)
class SpaceFacts:
    """A Box or Discrete space as the archive prints it."""

    kind: str  # "Box" or "Discrete"
    shape: tuple[int, ...] = ()
    dtype: str = "int64"
    low: np.ndarray | None = None  # Box bounds; None where numpy's print summarised them ("...")
    high: np.ndarray | None = None
    n: int = 0  # Discrete

    @property
    def size(self) -> int:
        """Features after SB3's preprocessing: flattened Box, one-hot Discrete."""
        return self.n if self.kind == "Discrete" else math.prod(self.shape)

    def describe(self) -> str:
        if self.kind == "Discrete":
            return f"Discrete({self.n})"
        bounds = ""
        if self.low is not None and self.high is not None and self.low.size <= 4:
            bounds = f"{self.low.tolist()}, {self.high.tolist()}, "
        return f"Box({bounds}{self.shape}, {self.dtype})"

    def mismatch(self, space: Any) -> str | None:
        """Why a task's gymnasium space is not this one, or None where it is."""
        kind = type(space).__name__
        if kind != self.kind:
            return f"a {kind} space, not a {self.kind}"
        if kind == "Discrete":
            if int(space.n) != self.n:
                return f"{int(space.n)} values, not {self.n}"
            if int(getattr(space, "start", 0)) != 0:
                return f"values start at {int(space.start)}, not 0"
            return None
        shape = tuple(int(dim) for dim in space.shape)
        if shape != self.shape:
            return f"shape {shape}, not {self.shape}"
        if _dtype_class(np.dtype(space.dtype)) != _dtype_class(np.dtype(self.dtype)):
            return f"dtype {np.dtype(space.dtype)}, not {self.dtype}"
        for name, ours in (("low", self.low), ("high", self.high)):
            theirs = np.asarray(getattr(space, name), dtype=np.float64)
            # The archive prints bounds with 8 digits: equal within that, infinities alike.
            if ours is not None and not np.allclose(theirs, ours.reshape(shape), rtol=1e-6, atol=1e-7):
                return f"bounds {name}={_brief(theirs)}, not {_brief(ours)}"
        return None


@dataclass(frozen=True)
class ModelFacts:
    """Everything about the model that the state dict does not say."""

    family: str  # ACTOR_CRITIC, DQN or SAC
    algorithm: str  # PPO, A2C, DQN, SAC (as told by the algorithm's own attributes)
    policy_class: str  # module.Name
    observation: SpaceFacts
    action: SpaceFacts
    net_arch: dict[str, list[int]]  # pi/vf, q or pi/qf; as stated, else SB3's default
    net_arch_stated: bool  # whether policy_kwargs gave it
    activation: str  # a name in ACTIVATIONS
    n_critics: int | None  # SAC, where policy_kwargs says
    exploration_rate: float  # DQN's epsilon for stochastic actions

    @property
    def action_dim(self) -> int:
        return self.action.size


def _dtype_class(dtype: np.dtype) -> str:
    return "integer" if dtype.kind in "iu" else {"f": "floating", "b": "bool"}.get(dtype.kind, dtype.kind)


def _brief(values: np.ndarray) -> str:
    flat = np.asarray(values, dtype=np.float64).ravel()
    shown = [f"{value:.6g}" for value in flat[:6]]
    return "[" + ", ".join(shown + (["..."] if flat.size > 6 else [])) + "]"


def _class_text(value: Any) -> str | None:
    match = CLASS_TEXT.fullmatch(value) if isinstance(value, str) else None
    return match.group(1) if match else None


def _policy_class(data: dict[str, Any], source: str) -> tuple[str, str]:
    value = data.get("policy_class")
    module = value.get("__module__") if isinstance(value, dict) else None
    init = value.get("__init__") if isinstance(value, dict) else None
    match = INIT_TEXT.fullmatch(init) if isinstance(init, str) else None
    if not isinstance(module, str) or match is None:
        raise PolicyLoadError(f"{source}: its data does not say its policy class in readable text")
    return module[:120], match.group(1)


def _family(module: str, name: str, source: str) -> str:
    family = POLICY_CLASSES.get((module, name))
    if family is not None:
        return family
    supported = "ActorCriticPolicy (PPO, A2C MlpPolicy), DQNPolicy, SACPolicy"
    if module.startswith("stable_baselines3.") and name in UNSUPPORTED_CLASSES:
        cause = f"{UNSUPPORTED_CLASSES[name]}, which this loader does not rebuild"
    else:
        cause = "a custom or unsupported policy class, whose code this loader will not run"
    raise PolicyLoadError(f"{source}: policy class {module}.{name} is {cause}; supported: {supported}")


def _algorithm(family: str, data: dict[str, Any]) -> str:
    if family != ACTOR_CRITIC:
        return family.upper()
    if "clip_range" in data:
        return "PPO"
    # A2C takes whole rollouts (no minibatches); other on-policy algorithms share the policy class.
    return "A2C" if "n_steps" in data and "batch_size" not in data else "on-policy"


def _policy_kwargs(data: dict[str, Any], family: str, source: str) -> dict[str, Any]:
    raw = data.get("policy_kwargs") or {}
    if not isinstance(raw, dict) or raw.get(":type:", "<class 'dict'>") != "<class 'dict'>":
        raise PolicyLoadError(f"{source}: its policy_kwargs are not a readable dict")
    # A pickled dict keeps its first-level items beside ":serialized:": those are what is read.
    kwargs = {key: value for key, value in raw.items() if not key.startswith(":")}
    unknown = sorted(set(kwargs) - KWARGS[family])
    if unknown:
        raise PolicyLoadError(
            f"{source}: policy_kwargs {[key[:40] for key in unknown[:5]]} are not ones this loader knows "
            "for its policy class; it cannot tell how they change the network"
        )
    return kwargs


def _check_extractor(kwargs: dict[str, Any], source: str) -> None:
    extractor = kwargs.get("features_extractor_class")
    if extractor is not None and _class_text(extractor) != FLATTEN:
        name = _class_text(extractor) or str(extractor)[:120]
        kind = "a CNN features extractor" if name.endswith(".NatureCNN") else "a custom features extractor"
        raise PolicyLoadError(
            f"{source}: the policy uses {kind} ({name}), which cannot be rebuilt without running its code; "
            "this loader reads MLP policies (FlattenExtractor)"
        )
    if kwargs.get("features_extractor_kwargs"):
        raise PolicyLoadError(f"{source}: features_extractor_kwargs are set, but FlattenExtractor takes none")
    if kwargs.get("use_sde") or kwargs.get("squash_output"):
        raise PolicyLoadError(
            f"{source}: the policy uses gSDE (use_sde=True), whose noise this loader does not rebuild"
        )


def _activation(kwargs: dict[str, Any], family: str, source: str) -> str:
    if kwargs.get("activation_fn") is None:
        return DEFAULT_ACTIVATION[family]
    text = kwargs["activation_fn"]
    name = _class_text(text) or ""
    module, _, short = name.rpartition(".")
    if (module, short) == ("torch.nn.modules.linear", "Identity") or (
        module == "torch.nn.modules.activation" and short in ACTIVATIONS
    ):
        return short
    raise PolicyLoadError(
        f"{source}: activation_fn {name or str(text)[:80]} is not one of torch's parameter-free "
        "activations, so this loader cannot rebuild it"
    )


def _layers(value: Any, what: str, source: str) -> list[int]:
    valid = isinstance(value, list) and len(value) <= MAX_LAYERS
    if not valid or not all(type(size) is int and 0 < size <= MAX_WIDTH for size in value):
        name = f"net_arch {what}" if what else "net_arch"
        raise PolicyLoadError(f"{source}: {name} {str(value)[:80]} is not a list of layer sizes")
    return list(value)


def _net_arch(kwargs: dict[str, Any], family: str, source: str) -> tuple[dict[str, list[int]], bool]:
    if kwargs.get("net_arch") is None:
        return DEFAULT_NET_ARCH[family], False
    arch = kwargs["net_arch"]
    # SB3 before 1.8 wrote [dict(pi=..., vf=...)]; SB3 2.x still reads it as that dict.
    if family == ACTOR_CRITIC and isinstance(arch, list) and arch and isinstance(arch[0], dict):
        arch = arch[0]
    if isinstance(arch, dict) and family == ACTOR_CRITIC:
        return {key: _layers(arch.get(key, []), key, source) for key in ("pi", "vf")}, True
    if isinstance(arch, dict) and family == SAC:
        if "pi" not in arch or "qf" not in arch:
            raise PolicyLoadError(
                f"{source}: SAC's net_arch dict needs 'pi' and 'qf' (it has {sorted(arch)})"
            )
        return {key: _layers(arch[key], key, source) for key in ("pi", "qf")}, True
    layers = _layers(arch, "", source)
    keys = {ACTOR_CRITIC: ("pi", "vf"), DQN: ("q",), SAC: ("pi", "qf")}[family]
    return {key: list(layers) for key in keys}, True


def _integer(value: Any, what: str, source: str, low: int = 0, high: int = MAX_FEATURES) -> int:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if not re.fullmatch(r"-?\d{1,12}", text) or not low <= int(text) <= high:
        raise PolicyLoadError(f"{source}: {what} {str(value)[:40]} is not a readable integer")
    return int(text)


def _bounds(text: Any, size: int, what: str, source: str) -> np.ndarray | None:
    if not isinstance(text, str) or len(text) > 1 << 20:
        raise PolicyLoadError(f"{source}: {what} is not readable text")
    if "..." in text:  # numpy summarised a large array
        return None
    try:
        values = np.array([float(token) for token in text.replace("[", " ").replace("]", " ").split()])
    except ValueError:
        raise PolicyLoadError(f"{source}: {what} {text[:60]!r} is not a printed array of numbers") from None
    if values.size != size:
        raise PolicyLoadError(f"{source}: {what} holds {values.size} numbers for a space of {size}")
    return values


def _space(value: Any, what: str, source: str) -> SpaceFacts:
    kind_text = _class_text(value.get(":type:")) if isinstance(value, dict) else None
    module, _, kind = (kind_text or "").rpartition(".")
    if module.rpartition(".")[0] not in SPACE_MODULES:
        raise PolicyLoadError(f"{source}: its {what} is not a readable gymnasium space")
    assert isinstance(value, dict)
    if kind == "Discrete":
        n = _integer(value.get("n"), f"{what}.n", source, 1)
        if _integer(value.get("start", 0), f"{what}.start", source, -MAX_FEATURES) != 0:
            raise PolicyLoadError(
                f"{source}: its {what} is a Discrete space not starting at 0, which SB3 does not support"
            )
        return SpaceFacts("Discrete", n=n)
    if kind != "Box":
        raise PolicyLoadError(
            f"{source}: its {what} is a {kind} space; this loader reads Box and Discrete spaces"
        )
    dtype = value.get("dtype")
    shape = value.get("_shape", value.get("shape"))
    valid_shape = isinstance(shape, list) and len(shape) <= 8
    if not valid_shape or not all(type(dim) is int and 0 < dim <= MAX_FEATURES for dim in shape):
        raise PolicyLoadError(f"{source}: its {what} has no readable shape")
    if dtype not in DTYPES:
        raise PolicyLoadError(f"{source}: its {what} has dtype {str(dtype)[:20]}, not a plain numeric one")
    size = math.prod(shape)
    if size > MAX_FEATURES:
        raise PolicyLoadError(f"{source}: its {what} has {size} values, more than this loader reads")
    low = _bounds(value.get("low"), size, f"{what}.low", source)
    high = _bounds(value.get("high"), size, f"{what}.high", source)
    return SpaceFacts("Box", tuple(shape), str(dtype), low, high)


def _is_image(space: SpaceFacts) -> bool:
    """SB3's `is_image_space`: a 3-D uint8 Box from 0 to 255 (SB3 may transpose and scale it)."""
    if space.kind != "Box" or len(space.shape) != 3 or space.dtype != "uint8":
        return False
    return (
        space.low is None or space.high is None or bool(np.all(space.low == 0) and np.all(space.high == 255))
    )


def _check_spaces(family: str, observation: SpaceFacts, action: SpaceFacts, source: str) -> None:
    if _is_image(observation):
        raise PolicyLoadError(
            f"{source}: it observes images {observation.describe()}, which SB3 transposes and scales "
            "outside the policy; this loader reads vector observations"
        )
    allowed = {ACTOR_CRITIC: ("Box", "Discrete"), DQN: ("Discrete",), SAC: ("Box",)}[family]
    if action.kind not in allowed:
        raise PolicyLoadError(
            f"{source}: a {family} policy with {action.describe()} actions is not supported"
        )
    if action.kind == "Box":
        if np.dtype(action.dtype).kind != "f":
            raise PolicyLoadError(f"{source}: its action space {action.describe()} is not floating point")
        if action.low is None or action.high is None:
            raise PolicyLoadError(
                f"{source}: its action space's bounds are summarised in its data (too large)"
            )
        if family == SAC and not (np.all(np.isfinite(action.low)) and np.all(np.isfinite(action.high))):
            raise PolicyLoadError(f"{source}: SAC needs finite action bounds; it has {action.describe()}")


def _exploration_rate(data: dict[str, Any], family: str, source: str) -> float:
    rate = data.get("exploration_rate", 0.0) if family == DQN else 0.0
    if type(rate) not in (int, float) or not 0.0 <= rate <= 1.0:
        raise PolicyLoadError(f"{source}: exploration_rate {str(rate)[:20]} is not a probability")
    return float(rate)


def read_facts(data: dict[str, Any], source: str) -> ModelFacts:
    """The model's facts from its `data` JSON, or one PolicyLoadError saying why it is refused."""
    module, name = _policy_class(data, source)
    family = _family(module, name, source)
    kwargs = _policy_kwargs(data, family, source)
    _check_extractor(kwargs, source)
    if data.get("use_sde"):
        raise PolicyLoadError(
            f"{source}: the policy uses gSDE (use_sde=True), whose noise this loader does not rebuild"
        )
    observation = _space(data.get("observation_space"), "observation_space", source)
    action = _space(data.get("action_space"), "action_space", source)
    _check_spaces(family, observation, action, source)
    n_critics = kwargs.get("n_critics")
    net_arch, stated = _net_arch(kwargs, family, source)
    return ModelFacts(
        family=family,
        algorithm=_algorithm(family, data),
        policy_class=f"{module}.{name}",
        observation=observation,
        action=action,
        net_arch=net_arch,
        net_arch_stated=stated,
        activation=_activation(kwargs, family, source),
        n_critics=None if n_critics is None else _integer(n_critics, "n_critics", source, 1, 64),
        exploration_rate=_exploration_rate(data, family, source),
    )
