"""Policy URIs to policies, through one registry of schemes.

    random://            uniform random actions (the baseline)
    scripted://navigator a hand-written explorer (the competent reference for navigation)
    scripted://tagger    a hand-written laser_tag player
    file://PATH, PATH    a pytest-policyeval checkpoint (.pt)
    pytorch://PATH       a Metta external checkpoint (a bare state dict; see policies/metta/)

Loaders import torch lazily, so resolving `random://` or importing this module stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pytest_policyeval.policies.base import Policy, PolicyLoadError


@dataclass(frozen=True)
class LoadOptions:
    """What a loader may need besides the URI."""

    pytorch_config: Path | None = None  # architecture config for pytorch:// checkpoints


Loader = Callable[[str, str, LoadOptions], Policy]  # (full uri, rest after "scheme://", options)


def _load_random(uri: str, rest: str, options: LoadOptions) -> Policy:
    from pytest_policyeval.policies.random_policy import RandomPolicy

    if rest.strip("/"):
        raise PolicyLoadError(f"{uri}: random:// takes no path")
    return RandomPolicy(uri)


SCRIPTED = ("navigator", "tagger")  # scripted.ACTORS, named here so the registry stays light


def _load_scripted(uri: str, rest: str, options: LoadOptions) -> Policy:
    name = rest.strip("/")
    if name not in SCRIPTED:
        raise PolicyLoadError(f"{uri}: unknown scripted policy '{name}'; known: {sorted(SCRIPTED)}")
    from pytest_policyeval.policies.scripted import ScriptedPolicy

    return ScriptedPolicy(uri, name)


def _existing_file(uri: str, rest: str) -> Path:
    path = Path(rest).expanduser()
    if not path.is_file():
        raise PolicyLoadError(f"{uri}: no such file: {path}")
    return path


def _load_file(uri: str, rest: str, options: LoadOptions) -> Policy:
    from pytest_policyeval.policies.torch_policy import load_file_policy

    return load_file_policy(uri, _existing_file(uri, rest), name=policy_label(uri))


def _load_pytorch(uri: str, rest: str, options: LoadOptions) -> Policy:
    from pytest_policyeval.policies.metta.policy import load_pytorch_policy

    path = _existing_file(uri, rest)
    return load_pytorch_policy(uri, path, name=policy_label(uri), config_path=options.pytorch_config)


SCHEMES: dict[str, Loader] = {
    "random": _load_random,
    "scripted": _load_scripted,
    "file": _load_file,
    "pytorch": _load_pytorch,
}
# Schemes whose rest is a path: their label is the file's stem.
PATH_SCHEMES = {"file", "pytorch"}


def split_uri(uri: str) -> tuple[str, str]:
    """('file', 'a/b.pt') for 'file://a/b.pt' or a bare 'a/b.pt'; ('random', '') for 'random'."""
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        return scheme.lower(), rest
    if uri in SCHEMES and uri != "file":
        return uri, ""
    return "file", uri


def load_policy(uri: str, options: LoadOptions | None = None) -> Policy:
    scheme, rest = split_uri(uri)
    loader = SCHEMES.get(scheme)
    if loader is None:
        raise PolicyLoadError(f"{uri}: unknown policy URI scheme '{scheme}://'; known: {sorted(SCHEMES)}")
    return loader(uri, rest, options or LoadOptions())


def policy_label(uri: str) -> str:
    """A short, readable name for test ids: the file stem, or the scheme for built-ins."""
    scheme, rest = split_uri(uri)
    if scheme not in PATH_SCHEMES:  # built-ins: random:// -> random, scripted://navigator -> navigator
        return rest.strip("/") or scheme
    stem = Path(rest.rstrip("/")).name
    for suffix in (".pt", ".pth", ".ckpt"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem or scheme
