"""`sb3://PATH.zip`: a Stable-Baselines3 model, evaluated without importing Stable-Baselines3.

    sb3://models/ppo_cartpole.zip                       deterministic actions, as SB3's
                                                        model.predict(obs, deterministic=True)
    sb3://models/ppo_cartpole.zip?deterministic=false   sampled actions (per-slot seeded streams;
                                                        DQN: epsilon-greedy at its exploration_rate)

Supported: PPO and A2C (ActorCriticPolicy: Discrete or Box actions), DQN (DQNPolicy) and SAC
(SACPolicy), with MLP networks over Box or Discrete observations (SB3's "MlpPolicy"), as saved by
`model.save()` in SB3 2.x. Refused, with the file and the cause: CNN, MultiInput and custom
policy classes or features extractors, custom activations, gSDE, image observations, a state
dict that disagrees with what `data` says, and a task whose spaces differ from the model's.

Nothing in the archive is unpickled except `policy.pth`, through `torch.load(weights_only=True)`
after torch_files' bounded checks (archive.py). A downloaded file (http, s3, wandb) is told from
other checkpoints by `archive.is_sb3_archive` and loaded with `load_sb3_file`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from pytest_policyeval.policies.base import LoadOptions, PolicyLoadError
from pytest_policyeval.policies.checkpoint import file_digest
from pytest_policyeval.policies.naming import policy_label
from pytest_policyeval.policies.sb3.archive import read_archive, read_policy_state
from pytest_policyeval.policies.sb3.metadata import DQN, read_facts
from pytest_policyeval.policies.sb3.networks import build_network
from pytest_policyeval.policies.sb3.policy import SB3Policy, describe_architecture
from pytest_policyeval.policies.steady import read_steadily

OPTIONS = {"deterministic": {"true": True, "false": False, "1": True, "0": False}}


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:  # a name too long for the file system (Python 3.11 raises it)
        return False


def split_rest(uri: str, rest: str) -> tuple[Path, bool]:
    """The model's path and whether it acts deterministically, from what follows `sb3://`."""
    path_text, query = rest, ""
    if "?" in rest and not _exists(Path(rest).expanduser()):  # a file named with "?" stays a path
        path_text, query = rest.rsplit("?", 1)
    deterministic = True
    for key, value in parse_qsl(query, keep_blank_values=True):
        choices = OPTIONS.get(key)
        if choices is None or value.lower() not in choices:
            raise PolicyLoadError(
                f"{uri}: unknown option '{key[:40]}={value[:40]}'; sb3:// takes ?deterministic=true|false"
            )
        deterministic = choices[value.lower()]
    if not path_text:
        raise PolicyLoadError(f"{uri}: sb3:// needs the path of a model's .zip file")
    return Path(path_text).expanduser(), deterministic


def load_sb3_file(uri: str, path: Path, name: str, deterministic: bool = True) -> SB3Policy:
    """An SB3 model file (local or downloaded) as a Policy; every problem is one PolicyLoadError."""
    with read_steadily(str(path), path):  # the digest is of the bytes the weights came from
        return _load_sb3_file(uri, path, name, deterministic)


def _load_sb3_file(uri: str, path: Path, name: str, deterministic: bool) -> SB3Policy:
    archive = read_archive(path)
    source = str(archive.path)
    facts = read_facts(archive.data, source)  # refusals from the metadata come before the weights
    network = build_network(facts, read_policy_state(archive.path), source)
    info = {
        "kind": "sb3",
        "algorithm": facts.algorithm,
        "path": source,
        "digest": file_digest(archive.path),
        "sb3_version": archive.version,
        "deterministic": deterministic,
        "architecture": describe_architecture(facts),
    }
    if facts.family == DQN:
        info["exploration_rate"] = facts.exploration_rate
    return SB3Policy(uri, name, facts, network, deterministic, info)


def load_sb3(uri: str, rest: str, options: LoadOptions) -> SB3Policy:
    """The `sb3://` scheme's loader (registered in policies/hooks.py)."""
    path, deterministic = split_rest(uri, rest)
    return load_sb3_file(uri, path, policy_label(uri), deterministic)
