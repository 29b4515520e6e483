"""`sb3://`: Stable-Baselines3 models act as SB3's own `predict` does, and hostile archives are refused.

Every model here is written by Stable-Baselines3 itself (the producer), at test time, after at
most a few dozen training steps; the loader under test never imports it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pickle
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

sb3 = pytest.importorskip("stable_baselines3")
import gymnasium as gym  # noqa: E402 (stable-baselines3 brings it)
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor  # noqa: E402

from pytest_policyeval.policies import PolicyLoadError, load_policy  # noqa: E402
from pytest_policyeval.policies.blocks import ROWS as BLOCK  # noqa: E402 (rows a network sees at once)
from pytest_policyeval.policies.sb3.archive import is_sb3_archive  # noqa: E402
from pytest_policyeval.spec import EnvSpec  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ROWS = 300


class Reach(gym.Env):
    """A stand-in task with asymmetric, two-dimensional action bounds (SAC unscales to them)."""

    observation_space = gym.spaces.Box(-5.0, 5.0, (5,), np.float32)
    action_space = gym.spaces.Box(np.array([-1.0, 0.0], np.float32), np.array([3.0, 5.0], np.float32))

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


class TinyExtractor(BaseFeaturesExtractor):
    """A user's own features extractor: code the loader must not (and cannot) run."""

    def __init__(self, observation_space: gym.Space):
        super().__init__(observation_space, features_dim=8)
        self.linear = torch.nn.Linear(int(np.prod(observation_space.shape)), 8)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(observations)


class Marker:
    """Unpickling this writes a file: proof that something ran code from an archive."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return exec, (f"open({str(self.path)!r}, 'w').close()",)


def _scaled(module: torch.nn.Module, factor: float) -> None:
    with torch.no_grad():
        module.weight.mul_(factor)


def _ppo_cartpole() -> Any:
    model = sb3.PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1, seed=1, device="cpu")
    return model.learn(64)


def _ppo_mountaincar() -> Any:
    kwargs = {
        "net_arch": {"pi": [32, 16], "vf": [8]},
        "activation_fn": torch.nn.ELU,
        "share_features_extractor": False,
        "ortho_init": False,
    }
    return sb3.PPO("MlpPolicy", "MountainCarContinuous-v0", policy_kwargs=kwargs, seed=2, device="cpu")


def _ppo_frozenlake() -> Any:  # Discrete observations (one-hot) and a linear policy (net_arch [])
    return sb3.PPO("MlpPolicy", "FrozenLake-v1", policy_kwargs={"net_arch": []}, seed=3, device="cpu")


def _a2c_pendulum() -> Any:
    model = sb3.A2C("MlpPolicy", "Pendulum-v1", seed=4, device="cpu").learn(10)
    _scaled(model.policy.action_net, 300.0)  # means beyond the bounds: predict clips them
    return model


def _a2c_sampled() -> Any:  # means well inside [-2, 2] and a narrow std: clipping never matters
    model = sb3.A2C("MlpPolicy", "Pendulum-v1", seed=5, device="cpu")
    _scaled(model.policy.action_net, 20.0)
    with torch.no_grad():
        model.policy.log_std.fill_(-1.5)
    return model


def _a2c_acrobot() -> Any:
    kwargs = {"net_arch": {"pi": [16], "vf": [8, 8]}, "activation_fn": torch.nn.ReLU}
    model = sb3.A2C("MlpPolicy", "Acrobot-v1", policy_kwargs=kwargs, seed=6, device="cpu")
    _scaled(model.policy.action_net, 10.0)  # logits of order 1: probabilities far from uniform
    return model


def _dqn_cartpole() -> Any:
    model = sb3.DQN("MlpPolicy", "CartPole-v1", learning_starts=16, batch_size=8, seed=7, device="cpu")
    return model.learn(48)


def _dqn_frozenlake() -> Any:
    model = sb3.DQN("MlpPolicy", "FrozenLake-v1", policy_kwargs={"net_arch": [32]}, seed=8, device="cpu")
    model.exploration_rate = 0.4  # saved in `data`; stochastic actions explore at this rate
    return model


def _sac_pendulum() -> Any:
    kwargs = {"net_arch": [64, 64]}
    model = sb3.SAC(
        "MlpPolicy",
        "Pendulum-v1",
        policy_kwargs=kwargs,
        learning_starts=8,
        batch_size=8,
        seed=9,
        device="cpu",
    )
    return model.learn(24)


def _sac_reach() -> Any:
    kwargs = {"net_arch": {"pi": [32], "qf": [16, 16]}, "n_critics": 3, "activation_fn": torch.nn.GELU}
    model = sb3.SAC("MlpPolicy", Reach(), policy_kwargs=kwargs, seed=10, device="cpu")
    with torch.no_grad():  # std 0.22 before tanh: samples rarely saturate
        model.actor.log_std.weight.zero_()
        model.actor.log_std.bias.fill_(-1.5)
    return model


MODELS: dict[str, Callable[[], Any]] = {
    "ppo-cartpole": _ppo_cartpole,
    "ppo-mountaincar": _ppo_mountaincar,
    "ppo-frozenlake": _ppo_frozenlake,
    "a2c-pendulum": _a2c_pendulum,
    "a2c-sampled": _a2c_sampled,
    "a2c-acrobot": _a2c_acrobot,
    "dqn-cartpole": _dqn_cartpole,
    "dqn-frozenlake": _dqn_frozenlake,
    "sac-pendulum": _sac_pendulum,
    "sac-reach": _sac_reach,
}


class Saved:
    def __init__(self, name: str, path: Path):
        self.name, self.path = name, path
        self.model = MODELS[name]()

    def spec(self) -> EnvSpec:
        env = self.model.get_env()
        return EnvSpec(
            engine="gymnasium",
            num_agents=1,
            max_steps=100,
            observation_space=env.observation_space,
            action_space=env.action_space,
            env_id=self.name,
        )

    def observations(self, rows: int = ROWS, seed: int = 0) -> np.ndarray:
        space = self.model.get_env().observation_space
        space.seed(seed)
        return np.stack([np.asarray(space.sample()) for _ in range(rows)])


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Saved]]:
    """Each model built and saved once per module, as `model.save()` writes it."""
    folder = tmp_path_factory.mktemp("sb3")
    cache: dict[str, Saved] = {}

    def get(name: str) -> Saved:
        if name not in cache:
            entry = Saved(name, folder / f"{name}.zip")
            entry.model.save(entry.path)
            cache[name] = entry
        return cache[name]

    # learn() makes a logger folder under $TMPDIR unless SB3_LOGDIR names one: keep it in ours.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SB3_LOGDIR", str(folder / "logs"))
        yield get


def _actor(saved: Saved, uri: str | None = None, device: str = "cpu") -> Any:
    return load_policy(uri or f"sb3://{saved.path}").actor(saved.spec(), device)


def _act(actor: Any, observations: np.ndarray, seeds: np.ndarray, step: int = 0) -> np.ndarray:
    actor.reset(seeds)
    return actor.act(observations, np.arange(len(observations)), step)


def _rewrite(
    source: Path,
    target: Path,
    edit: Callable[[dict], None] | None = None,
    compression: int = zipfile.ZIP_STORED,
    **entries: bytes,
) -> Path:
    """A copy of an SB3 zip with `data` edited (as JSON) and other entries replaced."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", compression) as new:
        for name in old.namelist():
            payload = entries.get(name.replace(".", "_"), old.read(name))
            if name == "data" and edit is not None:
                data = json.loads(payload)
                edit(data)
                payload = json.dumps(data).encode()
            new.writestr(name, payload)
    return target


def _refused(path: Path, match: str, uri: str | None = None) -> str:
    start = time.perf_counter()
    with pytest.raises(PolicyLoadError, match=match) as error:
        load_policy(uri or f"sb3://{path}")
    message = str(error.value)
    assert time.perf_counter() - start < 5
    assert str(path) in message and "\n" not in message and len(message) < 600, message
    return message


# ---- acting as SB3 does ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_deterministic_actions_equal_sb3_predict(saved: Callable[[str], Saved], name: str) -> None:
    model = saved(name)
    observations = model.observations()
    ours = _act(_actor(model), observations, np.arange(ROWS, dtype=np.uint64))
    # SB3 given the same blocks of rows as the actor's network sees (a float32 matrix product's
    # last bits depend on how many rows it is given: see the test below).
    blocks = [observations[i : i + BLOCK] for i in range(0, ROWS, BLOCK)]
    padded = [np.concatenate((b, np.zeros((BLOCK - len(b), *b.shape[1:]), b.dtype))) for b in blocks]
    theirs = np.concatenate(
        [model.model.predict(p, deterministic=True)[0][: len(b)] for p, b in zip(padded, blocks, strict=True)]
    )
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("name", ["a2c-pendulum", "a2c-sampled", "sac-pendulum", "sac-reach"])
def test_a_slots_action_is_the_same_in_any_batch(saved: Callable[[str], Saved], name: str) -> None:
    # Continuous actions show a float's last bit: an episode's return must not depend on how
    # many episodes were live beside it, nor on whether it is replayed alone.
    model = saved(name)
    observations = model.observations()
    seeds = np.arange(ROWS, dtype=np.uint64)
    whole = _act(_actor(model, f"sb3://{model.path}?deterministic=false"), observations, seeds)
    actor = _actor(model, f"sb3://{model.path}?deterministic=false")
    actor.reset(seeds)
    for size in (1, 2, 3, 31, 33, 77):
        part = actor.act(observations[:size], np.arange(size), 0)
        assert np.array_equal(part, whole[:size]), size
    # The premise: SB3's own batched product does differ with the batch's size here.
    alone = np.stack([model.model.predict(o[None], deterministic=True)[0][0] for o in observations[:40]])
    assert not np.array_equal(alone, model.model.predict(observations[:40], deterministic=True)[0])


def test_clipped_and_unscaled_actions_reach_the_bounds_as_sb3s_do(saved: Callable[[str], Saved]) -> None:
    # The premise of the equality above for Box actions: clipping and unscaling are exercised.
    clipped = _act(
        _actor(saved("a2c-pendulum")), saved("a2c-pendulum").observations(), np.zeros(ROWS, np.uint64)
    )
    assert (np.abs(clipped) == 2.0).mean() > 0.3 and (np.abs(clipped) < 2.0).any()
    reach = saved("sac-reach")
    unscaled = _act(_actor(reach), reach.observations(), np.zeros(ROWS, np.uint64))
    assert unscaled[:, 1].min() >= 0.0 and unscaled[:, 1].max() <= 5.0 and unscaled[:, 1].std() > 0.1


def test_the_scheme_loads_by_uri_and_records_what_it_loaded(saved: Callable[[str], Saved]) -> None:
    path = saved("a2c-acrobot").path
    policy = load_policy(f"sb3://{path}")
    info = policy.describe()
    assert info["kind"] == "sb3" and info["algorithm"] == "A2C" and info["deterministic"] is True
    assert info["digest"] == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["sb3_version"] == sb3.__version__
    architecture = info["architecture"]
    assert architecture["net_arch"] == {"pi": [16], "vf": [8, 8]} and architecture["activation"] == "ReLU"
    assert architecture["action_space"] == "Discrete(3)" and architecture["distribution"] == "categorical"
    algorithms = {name: load_policy(f"sb3://{saved(name).path}").info["algorithm"] for name in MODELS}
    assert {algorithms[n] for n in ("ppo-cartpole", "ppo-frozenlake")} == {"PPO"}
    assert algorithms["dqn-cartpole"] == "DQN" and algorithms["sac-reach"] == "SAC"
    stochastic = load_policy(f"sb3://{path}?deterministic=false")
    assert stochastic.info["deterministic"] is False


@pytest.mark.parametrize("query", ["?deterministic=maybe", "?temperature=2"])
def test_unknown_uri_options_are_refused(saved: Callable[[str], Saved], query: str) -> None:
    path = saved("ppo-cartpole").path
    with pytest.raises(PolicyLoadError, match=r"unknown option .*sb3:// takes \?deterministic=true\|false"):
        load_policy(f"sb3://{path}{query}")


# ---- sampling ----------------------------------------------------------------------------------------

N = 20_000  # rows for the statistical checks: 5 standard errors is far from a chance failure


def _same_observation(saved: Saved) -> tuple[np.ndarray, torch.Tensor]:
    one = saved.observations(1, seed=11)
    return np.repeat(one, N, axis=0), saved.model.policy.obs_to_tensor(one)[0]


def test_categorical_samples_follow_the_softmax(saved: Callable[[str], Saved]) -> None:
    model = saved("a2c-acrobot")
    observations, tensor = _same_observation(model)
    with torch.no_grad():
        probs = model.model.policy.get_distribution(tensor).distribution.probs[0].numpy()
    assert probs.max() < 0.9 and probs.min() > 0.02  # premise: a distribution worth sampling
    actions = _act(_actor(model, f"sb3://{model.path}?deterministic=false"), observations, np.arange(N))
    frequencies = np.bincount(actions, minlength=3) / N
    assert np.all(np.abs(frequencies - probs) < 5 * np.sqrt(probs * (1 - probs) / N)), (frequencies, probs)


def test_gaussian_samples_have_the_policys_mean_and_std(saved: Callable[[str], Saved]) -> None:
    model = saved("a2c-sampled")
    observations, tensor = _same_observation(model)
    with torch.no_grad():
        distribution = model.model.policy.get_distribution(tensor).distribution
    mean, std = distribution.mean[0].numpy(), distribution.stddev[0].numpy()
    assert np.all(np.abs(mean) + 6 * std < 2.0)  # premise: clipping never changes a sample
    actions = _act(_actor(model, f"sb3://{model.path}?deterministic=false"), observations, np.arange(N))
    assert np.all(np.abs(actions.mean(axis=0) - mean) < 5 * std / np.sqrt(N))
    assert np.all(np.abs(actions.std(axis=0) / std - 1) < 0.03)


def test_sac_samples_are_a_squashed_gaussian_unscaled_to_the_bounds(saved: Callable[[str], Saved]) -> None:
    model = saved("sac-reach")
    observations, tensor = _same_observation(model)
    with torch.no_grad():
        mean, log_std, _ = model.model.actor.get_action_dist_params(tensor)
    mean, std = mean[0].numpy(), log_std.exp()[0].numpy()
    actions = _act(_actor(model, f"sb3://{model.path}?deterministic=false"), observations, np.arange(N))
    low, high = Reach.action_space.low, Reach.action_space.high
    gaussian = np.arctanh(np.clip(2.0 * (actions - low) / (high - low) - 1.0, -1 + 1e-6, 1 - 1e-6))
    assert np.all(np.abs(gaussian.mean(axis=0) - mean) < 5 * std / np.sqrt(N))
    assert np.all(np.abs(gaussian.std(axis=0) / std - 1) < 0.03)


def test_dqn_explores_epsilon_greedily_at_its_saved_rate(saved: Callable[[str], Saved]) -> None:
    model = saved("dqn-frozenlake")
    observations, _ = _same_observation(model)
    greedy = int(model.model.predict(observations[:1], deterministic=True)[0][0])
    actions = _act(_actor(model, f"sb3://{model.path}?deterministic=false"), observations, np.arange(N))
    expected = np.full(4, 0.4 / 4)
    expected[greedy] += 0.6
    frequencies = np.bincount(actions, minlength=4) / N
    assert np.all(np.abs(frequencies - expected) < 5 * np.sqrt(expected * (1 - expected) / N))
    assert set(_act(_actor(model), observations[:500], np.arange(500))) == {
        greedy
    }  # deterministic: no epsilon


@pytest.mark.parametrize("name", ["a2c-acrobot", "a2c-sampled", "dqn-frozenlake", "sac-reach"])
def test_a_slots_samples_do_not_depend_on_its_batch(saved: Callable[[str], Saved], name: str) -> None:
    model = saved(name)
    uri = f"sb3://{model.path}?deterministic=false"
    observations = model.observations(64)
    seeds = np.arange(1000, 1064, dtype=np.uint64)
    alone = _act(_actor(model, uri), observations, seeds, step=3)
    # The same slots, fewer of them, in another order, in another actor with other neighbours.
    actor = _actor(model, uri)
    actor.reset(np.concatenate([seeds[::-1], np.arange(7, dtype=np.uint64)]))
    slots = np.arange(0, 64, 3)
    batched = actor.act(observations[63 - slots], slots, 3)
    expected = alone[63 - slots]
    if np.issubdtype(expected.dtype, np.integer):
        assert np.array_equal(batched, expected)
    else:  # one batch's matrix product may round the last bit unlike another's
        np.testing.assert_allclose(batched, expected, rtol=1e-5, atol=1e-6)
    later = _act(_actor(model, uri), observations, seeds, step=4)
    assert not np.array_equal(later, alone)  # a new step draws anew


# ---- refusals ----------------------------------------------------------------------------------------


def test_a_model_on_a_task_with_other_spaces_is_refused(saved: Callable[[str], Saved]) -> None:
    cartpole, pendulum = saved("ppo-cartpole"), saved("sac-pendulum")
    policy = load_policy(f"sb3://{cartpole.path}")
    with pytest.raises(PolicyLoadError) as error:
        policy.actor(pendulum.spec())
    message = str(error.value)
    assert "trained with observations Box(" in message and "(4,), float32" in message
    assert "task sac-pendulum" in message and "shape (3,), not (4,)" in message
    narrow = EnvSpec(
        engine="gymnasium",
        num_agents=1,
        max_steps=10,
        observation_space=pendulum.spec().observation_space,
        action_space=gym.spaces.Box(-1.0, 1.0, (1,), np.float32),
    )
    with pytest.raises(
        PolicyLoadError, match=r"actions Box\(\[-2.0\], \[2.0\].* bounds low=\[-1\], not \[-2\]"
    ):
        load_policy(f"sb3://{pendulum.path}").actor(narrow)
    more_actions = EnvSpec(
        engine="gymnasium",
        num_agents=1,
        max_steps=10,
        observation_space=cartpole.spec().observation_space,
        action_space=gym.spaces.Discrete(3),
    )
    with pytest.raises(PolicyLoadError, match=r"actions Discrete\(2\).*: 3 values, not 2"):
        policy.actor(more_actions)


def test_an_executable_pickle_in_policy_pth_is_refused_and_never_runs(
    saved: Callable[[str], Saved], tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    buffer = io.BytesIO()
    torch.save(Marker(marker), buffer)
    premise = tmp_path / "premise.pt"
    premise.write_bytes(buffer.getvalue())
    torch.load(premise, weights_only=False)  # unpickled naively, the payload does run
    assert marker.exists()
    marker.unlink()
    path = _rewrite(saved("ppo-cartpole").path, tmp_path / "evil.zip", policy_pth=buffer.getvalue())
    message = _refused(path, r"\(policy\.pth\): refused: it names (__builtin__|builtins)\.exec")
    assert "premise" not in message and not marker.exists()


def test_pickles_in_data_are_never_decoded(saved: Callable[[str], Saved], tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = base64.b64encode(pickle.dumps(Marker(marker))).decode()

    def poison(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == ":serialized:":
                    value[key] = payload
                else:
                    poison(item)

    model = saved("sac-pendulum")
    path = _rewrite(model.path, tmp_path / "poisoned.zip", poison)
    assert json.loads(zipfile.ZipFile(path).read("data"))["observation_space"][":serialized:"] == payload
    observations = model.observations()
    ours = _act(load_policy(f"sb3://{path}").actor(model.spec()), observations, np.zeros(ROWS, np.uint64))
    assert np.array_equal(ours, model.model.predict(observations, deterministic=True)[0])
    assert not marker.exists()


def test_loading_imports_neither_stable_baselines3_nor_cloudpickle(saved: Callable[[str], Saved]) -> None:
    model = saved("ppo-cartpole")
    observations = model.observations(8)
    script = f"""
import sys
sys.modules["stable_baselines3"] = None  # importing it now fails
import numpy as np
from pytest_policyeval.policies.sb3.loader import load_sb3_file
policy = load_sb3_file("sb3://m", {str(model.path)!r}, "m")
loaded = [name for name, module in sys.modules.items()
          if module is not None and name.split(".")[0] in ("stable_baselines3", "cloudpickle")]
import gymnasium
from pytest_policyeval.spec import EnvSpec
env = gymnasium.make("CartPole-v1")
spec = EnvSpec(engine="gymnasium", num_agents=1, max_steps=1,
               observation_space=env.observation_space, action_space=env.action_space)
actor = policy.actor(spec)
actor.reset(np.arange(8, dtype=np.uint64))
print(loaded, actor.act(np.array({observations.tolist()!r}, np.float32), np.arange(8), 0).tolist())
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    expected = model.model.predict(observations.astype(np.float32), deterministic=True)[0].tolist()
    assert done.stdout.strip() == f"[] {expected}"


def test_a_custom_features_extractor_is_refused_by_name(tmp_path: Path) -> None:
    kwargs = {"features_extractor_class": TinyExtractor, "net_arch": [8]}
    path = tmp_path / "custom.zip"
    sb3.PPO("MlpPolicy", "CartPole-v1", policy_kwargs=kwargs, device="cpu").save(path)
    _refused(
        path, r"a custom features extractor \(test_sb3_policies\.TinyExtractor\), which cannot be rebuilt"
    )


def _edited(saved: Saved, tmp_path: Path, edit: Callable[[dict], None]) -> Path:
    return _rewrite(saved.path, tmp_path / "edited.zip", edit)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda d: d["policy_class"].update(
                __module__="my_lab.policies", __init__="<function FancyPolicy.__init__ at 0x7f0012345678>"
            ),
            r"policy class my_lab\.policies\.FancyPolicy is a custom or unsupported policy class",
        ),
        (
            lambda d: d["policy_class"].update(__init__="<function ActorCriticCnnPolicy.__init__ at 0x7f00>"),
            r"ActorCriticCnnPolicy is a CNN policy \(image observations\), which this loader does not",
        ),
        (lambda d: d.pop("policy_class"), "does not say its policy class in readable text"),
        (
            lambda d: d.update(policy_kwargs={"activation_fn": "<class 'my_lab.layers.Swish'>"}),
            r"activation_fn my_lab\.layers\.Swish is not one of torch's parameter-free activations",
        ),
        (
            lambda d: d.update(
                policy_kwargs={
                    "features_extractor_class": "<class 'stable_baselines3.common.torch_layers.NatureCNN'>"
                }
            ),
            r"a CNN features extractor \(stable_baselines3\.common\.torch_layers\.NatureCNN\)",
        ),
        (lambda d: d.update(policy_kwargs={"dueling": True}), r"policy_kwargs \['dueling'\] are not ones"),
        (lambda d: d.update(use_sde=True), r"gSDE \(use_sde=True\)"),
        (
            lambda d: d["observation_space"].update({":type:": "<class 'gymnasium.spaces.dict.Dict'>"}),
            "its observation_space is a Dict space; this loader reads Box and Discrete spaces",
        ),
        (
            lambda d: d["observation_space"].update(
                _shape=[8, 8, 1],
                dtype="uint8",
                low=str(np.zeros((8, 8, 1), np.uint8)),
                high=str(np.full((8, 8, 1), 255)),
            ),
            "it observes images Box",
        ),
        # The data lies about the network: the state dict disagrees.
        (
            lambda d: d.update(policy_kwargs={"net_arch": [32, 32]}),
            r"its data says net_arch \{'pi': \[32, 32\], 'vf': \[32, 32\]\} but policy\.pth holds layers "
            r"\{'pi': \[64, 64\], 'vf': \[64, 64\]\}",
        ),
        (
            lambda d: d["observation_space"].update(
                _shape=[5], low="[0. 0. 0. 0. 0.]", high="[1. 1. 1. 1. 1.]"
            ),
            r"'mlp_extractor\.policy_net\.0\.weight' has shape \(64, 4\) in the checkpoint but the "
            r"architecture expects \(64, 5\)",
        ),
        (
            lambda d: d["action_space"].update(n="3"),
            r"'action_net\.weight' has shape \(2, 64\) in the checkpoint but the architecture expects "
            r"\(3, 64\)",
        ),
    ],
)
def test_data_that_cannot_be_rebuilt_safely_or_lies_is_refused_by_name(
    saved: Callable[[str], Saved], tmp_path: Path, edit: Callable[[dict], None], match: str
) -> None:
    _refused(_edited(saved("ppo-cartpole"), tmp_path, edit), match)


def test_a_model_saved_with_gsde_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gsde.zip"
    sb3.PPO("MlpPolicy", "Pendulum-v1", use_sde=True, device="cpu").save(path)
    _refused(path, r"gSDE \(use_sde=True\)")


def test_a_custom_net_arch_left_out_of_the_data_is_caught_by_the_weights(
    saved: Callable[[str], Saved], tmp_path: Path
) -> None:
    path = _edited(saved("dqn-frozenlake"), tmp_path, lambda d: d.update(policy_kwargs={}))
    _refused(
        path,
        r"its data leaves SB3's default net_arch \{'q': \[64, 64\]\} but policy\.pth holds layers "
        r"\{'q': \[32\]\}",
    )
    path = _edited(saved("sac-reach"), tmp_path, lambda d: d["policy_kwargs"].update(n_critics=2))
    _refused(path, r"its data says n_critics=2 but policy\.pth holds 3")


def test_extractor_weights_the_data_does_not_mention_are_refused(
    saved: Callable[[str], Saved], tmp_path: Path
) -> None:
    model = saved("ppo-cartpole")
    state = {key: value.clone() for key, value in model.model.policy.state_dict().items()}
    state["features_extractor.linear.weight"] = torch.zeros(4, 4)
    path = _rewrite(model.path, tmp_path / "extra.zip", policy_pth=_torch_bytes(state))
    _refused(path, r"policy\.pth holds features-extractor weights \('features_extractor\.linear\.weight'\)")
    del state["features_extractor.linear.weight"]
    state["mlp_extractor.policy_net.4.weight"] = torch.zeros(64, 64)  # a layer the data does not say
    path = _rewrite(model.path, tmp_path / "deeper.zip", policy_pth=_torch_bytes(state))
    _refused(path, r"its data leaves SB3's default net_arch .* holds layers \{'pi': \[64, 64, 64\], 'vf'")
    state["mlp_extractor.policy_net.5.weight"] = torch.zeros(64, 64)  # not SB3's Linear, activation, ...
    path = _rewrite(model.path, tmp_path / "odd.zip", policy_pth=_torch_bytes(state))
    _refused(path, r"the layers of 'mlp_extractor\.policy_net' in policy\.pth \(\[0, 2, 4, 5\]\) are not")


def _torch_zip(records: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in records:
            archive.writestr(name, data)
    return buffer.getvalue()


def _claim_huge_data(path: Path, target: Path) -> Path:
    """The central directory says `data` unpacks to 4 GB (its bytes are unchanged)."""
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")
    while at >= 0:
        length = int.from_bytes(raw[at + 28 : at + 30], "little")
        if raw[at + 46 : at + 46 + length] == b"data":
            raw[at + 24 : at + 28] = (0xFFFFFFF0).to_bytes(4, "little")
            break
        at = raw.find(b"PK\x01\x02", at + 46 + length)
    target.write_bytes(bytes(raw))
    return target


def test_broken_and_foreign_files_get_one_short_message(
    saved: Callable[[str], Saved], tmp_path: Path
) -> None:
    good = saved("ppo-cartpole").path
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good.read_bytes()[:100])
    _refused(
        truncated, r"not a Stable-Baselines3 model: not a readable zip archive \(truncated, or another format"
    )
    # Cut after policy.pth, the file's last zip directory is policy.pth's own (a torch.save zip).
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _refused(truncated, r"no 'data' or 'policy.pth' entry; .* it reads as a torch.save file \(a truncated")
    text = tmp_path / "notes.zip"
    text.write_text("hello")
    _refused(text, r"it starts with b'hello'")
    empty = tmp_path / "empty.zip"
    empty.write_bytes(b"")
    _refused(empty, "empty file")
    _refused(tmp_path / "missing.zip", "no such file")
    _refused(tmp_path, "is a directory")
    torch_file = tmp_path / "weights.zip"
    torch.save({"w": torch.zeros(3)}, torch_file)
    _refused(torch_file, r"a zip file, but not a Stable-Baselines3 model \(no 'data' or 'policy.pth' entry")
    _refused(_rewrite(good, tmp_path / "text-data.zip", data=b"{not json"), "its 'data' entry is not JSON")
    _refused(_rewrite(good, tmp_path / "deep.zip", data=b"[" * 100_000), r"not JSON \(nested too deeply\)")
    _refused(_claim_huge_data(good, tmp_path / "huge-data.zip"), r"its 'data' entry claims 4294967280 bytes")
    # policy.pth whose pickle claims a 4 GB tensor while storing 12 bytes.
    inner = zipfile.ZipFile(io.BytesIO(_torch_bytes({"w": torch.zeros(3)})))
    records = [(name, inner.read(name)) for name in inner.namelist()]
    records = [
        (
            name,
            data.replace(b"cpuq\x06K\x03t", b"cpuq\x06J\x00\x00\x00\x40t")
            if name.endswith("data.pkl")
            else data,
        )
        for name, data in records
    ]
    huge = _rewrite(good, tmp_path / "huge-claim.zip", policy_pth=_torch_zip(records))
    _refused(huge, r"\(policy\.pth\): a tensor claims 4\.0 GB but the file stores 12 bytes")
    deflated = _rewrite(good, tmp_path / "deflated.zip", compression=zipfile.ZIP_DEFLATED)
    _refused(deflated, r"its 'policy.pth' entry is compressed; SB3 stores it as it is")
    not_torch = _rewrite(good, tmp_path / "not-torch.zip", policy_pth=b"plain bytes")
    _refused(not_torch, r"\(policy\.pth\): not a PyTorch checkpoint")


def _torch_bytes(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def test_sb3_archives_are_told_by_their_content(saved: Callable[[str], Saved], tmp_path: Path) -> None:
    good = saved("dqn-cartpole").path
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(good.read_bytes())
    assert is_sb3_archive(good) and is_sb3_archive(renamed)
    torch_file = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(3)}, torch_file)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    without_policy = tmp_path / "data-only.zip"
    with zipfile.ZipFile(without_policy, "w") as archive:
        archive.writestr("data", "{}")
    for path in (torch_file, text, without_policy, tmp_path / "missing.zip", tmp_path):
        assert not is_sb3_archive(path), path


# ---- devices -----------------------------------------------------------------------------------------


def test_a_cuda_device_is_refused_clearly_where_torch_has_none(saved: Callable[[str], Saved]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    model = saved("ppo-cartpole")
    with pytest.raises(PolicyLoadError, match="sees no CUDA device"):
        _actor(model, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["ppo-cartpole", "a2c-pendulum", "dqn-frozenlake", "sac-reach"])
def test_actions_on_cuda_match_cpu(saved: Callable[[str], Saved], name: str) -> None:
    model = saved(name)
    observations = model.observations()
    for uri in (f"sb3://{model.path}", f"sb3://{model.path}?deterministic=false"):
        on_cpu = _act(_actor(model, uri), observations, np.arange(ROWS, dtype=np.uint64))
        on_cuda = _act(_actor(model, uri, "cuda"), observations, np.arange(ROWS, dtype=np.uint64))
        assert on_cuda.dtype == on_cpu.dtype
        if np.issubdtype(on_cpu.dtype, np.integer):
            assert (on_cuda == on_cpu).mean() > 0.99  # a near-tie may fall the other way on the GPU
        else:
            np.testing.assert_allclose(on_cuda, on_cpu, rtol=1e-4, atol=1e-4)


def _with_data(tmp_path: Path, name: str, change: Callable[[Any], str]) -> Path:
    """A copy of the shipped CartPole model whose `data` entry `change` rewrote."""
    source = zipfile.ZipFile(Path(__file__).resolve().parents[1] / "examples/policies/cartpole_ppo.zip")
    target = tmp_path / name
    with zipfile.ZipFile(target, "w") as out:
        for info in source.infolist():
            raw = source.read(info.filename)
            out.writestr(info, change(json.loads(raw)) if info.filename == "data" else raw)
    return target


def test_a_lying_input_size_is_refused_before_the_network_is_built(tmp_path: Path) -> None:
    def huge(data: dict) -> str:
        data["observation_space"]["_shape"] = [4_000_000]
        data["observation_space"]["shape"] = [4_000_000]
        # numpy abbreviates a long array's text: the bounds cannot contradict the claimed size.
        data["observation_space"]["low"] = "[-1. -1. -1. ... -1. -1. -1.]"
        data["observation_space"]["high"] = "[1. 1. 1. ... 1. 1. 1.]"
        return json.dumps(data)

    path = _with_data(tmp_path, "huge.zip", huge)
    script = (
        "import resource\n"
        "from pytest_policyeval.policies import PolicyLoadError, load_policy\n"
        f"try:\n    load_policy('sb3://{path}')\nexcept PolicyLoadError as exc:\n    print(exc)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120).stdout
    message, peak_mb = out.strip().splitlines()
    assert "expects (64, 4000000)" in message
    # The 4M-wide first layer (64 x 4M floats, 1 GB a copy; 2.1 GB peak when it was built) was never
    # allocated: what is left is torch itself (250-800 MB, by build and machine).
    assert int(peak_mb) < 1200


def test_a_data_entry_of_many_small_objects_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = _with_data(tmp_path, "objects.zip", lambda data: "[" + ",".join(["{}"] * 150_000) + "]")
    with pytest.raises(PolicyLoadError, match=r"holds 150001 objects and lists, more than a model's"):
        load_policy(f"sb3://{path}")
