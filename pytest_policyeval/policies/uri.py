"""Policy URIs to policies, through one registry of schemes.

    random://            uniform random actions (the baseline)
    scripted://navigator a hand-written explorer (the competent reference for navigation)
    file://PATH, PATH    a pytest-policyeval checkpoint (.pt)

Loaders import torch lazily, so resolving `random://` or importing this module stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pytest_policyeval.policies.base import Policy, PolicyLoadError

Loader = Callable[[str, str], Policy]  # (full uri, rest after "scheme://") -> Policy


def _load_random(uri: str, rest: str) -> Policy:
    from pytest_policyeval.policies.random_policy import RandomPolicy

    if rest.strip("/"):
        raise PolicyLoadError(f"{uri}: random:// takes no path")
    return RandomPolicy(uri)


SCRIPTED = {"navigator"}


def _load_scripted(uri: str, rest: str) -> Policy:
    name = rest.strip("/")
    if name not in SCRIPTED:
        raise PolicyLoadError(f"{uri}: unknown scripted policy '{name}'; known: {sorted(SCRIPTED)}")
    from pytest_policyeval.policies.scripted import NavigatorPolicy

    return NavigatorPolicy(uri)


def _load_file(uri: str, rest: str) -> Policy:
    path = Path(rest).expanduser()
    if not path.exists():
        raise PolicyLoadError(f"{uri}: no such file: {path}")
    from pytest_policyeval.policies.torch_policy import load_file_policy

    return load_file_policy(uri, path, name=policy_label(uri))


SCHEMES: dict[str, Loader] = {"random": _load_random, "scripted": _load_scripted, "file": _load_file}


def split_uri(uri: str) -> tuple[str, str]:
    """('file', 'a/b.pt') for 'file://a/b.pt' or a bare 'a/b.pt'; ('random', '') for 'random'."""
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        return scheme.lower(), rest
    if uri in SCHEMES and uri != "file":
        return uri, ""
    return "file", uri


def load_policy(uri: str) -> Policy:
    scheme, rest = split_uri(uri)
    loader = SCHEMES.get(scheme)
    if loader is None:
        raise PolicyLoadError(f"{uri}: unknown policy URI scheme '{scheme}://'; known: {sorted(SCHEMES)}")
    return loader(uri, rest)


def policy_label(uri: str) -> str:
    """A short, readable name for test ids: the file stem, or the scheme for built-ins."""
    scheme, rest = split_uri(uri)
    if scheme != "file":  # built-ins: random:// -> random, scripted://navigator -> navigator
        return rest.strip("/") or scheme
    stem = Path(rest.rstrip("/")).name
    for suffix in (".pt", ".pth", ".ckpt"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    return stem or scheme
