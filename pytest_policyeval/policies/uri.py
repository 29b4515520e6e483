"""Policy URIs to policies, through one registry of schemes.

    random://            uniform random actions (the baseline)
    scripted://NAME      mettagrid's hand-written players (registered by that engine)
    file://PATH, PATH    either kind of checkpoint below, told by its content
    pytorch://PATH       a Metta external checkpoint (a bare state dict; see policies/metta/)
    http(s)://, s3://    either kind of checkpoint, downloaded (see policies/sources/)
    wandb://...          a W&B artifact holding either kind of checkpoint
    sb3://PATH.zip       a Stable-Baselines3 model (policies/sb3/)

Loaders import torch lazily, so resolving `random://` or importing this module stays light.
Schemes are registered through the `pytest_policyeval_policy_schemes` hook (policies/hooks.py for
the built-in ones), remote stores through `pytest_policyeval_policy_sources`.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Callable
from pathlib import Path

from pytest_policyeval.policies.base import LoadOptions, Policy, PolicyLoadError
from pytest_policyeval.policies.naming import policy_label, split_uri

Loader = Callable[[str, str, LoadOptions], Policy]  # (full uri, rest after "scheme://", options)


def load_random(uri: str, rest: str, options: LoadOptions) -> Policy:
    from pytest_policyeval.policies.random_policy import RandomPolicy

    if rest.strip("/"):
        raise PolicyLoadError(f"{uri}: random:// takes no path")
    return RandomPolicy(uri)


def _existing_file(uri: str, rest: str) -> Path:
    """The file a local URI names, or one message saying what is there instead."""
    path = Path(rest).expanduser()
    try:
        mode = path.stat().st_mode
    except OSError as exc:  # missing, a name too long, a loop of links, no permission
        reason = (
            "no such file" if isinstance(exc, FileNotFoundError) else (exc.strerror or type(exc).__name__)
        )
        raise PolicyLoadError(f"{uri}: {reason}: {str(path)[:200]}") from None
    if stat.S_ISDIR(mode):
        raise PolicyLoadError(f"{uri}: is a directory, not a checkpoint file: {path}")
    if not stat.S_ISREG(mode):
        raise PolicyLoadError(f"{uri}: not a regular file (a FIFO, device or socket): {path}")
    return path


def load_file(uri: str, rest: str, options: LoadOptions) -> Policy:
    # A Metta user's `--policy-path x.pt` is a bare state dict: read the file, not the scheme.
    return load_local_checkpoint(uri, _existing_file(uri, rest), options)


def _metta(uri: str, path: Path, options: LoadOptions) -> Policy:
    from pytest_policyeval.policies.metta.policy import load_pytorch_policy

    return load_pytorch_policy(
        uri, path, name=policy_label(uri), config_path=options.pytorch_config, preset=options.metta_preset
    )


def load_pytorch(uri: str, rest: str, options: LoadOptions) -> Policy:
    return _metta(uri, _existing_file(uri, rest), options)


def load_local_checkpoint(uri: str, path: Path, options: LoadOptions) -> Policy:
    """A local or downloaded file, told by its content: a Stable-Baselines3 zip, the project's
    checkpoint, else a Metta state dict."""
    from pytest_policyeval.policies.checkpoint import is_policyeval_checkpoint
    from pytest_policyeval.policies.sb3.archive import is_sb3_archive

    if is_sb3_archive(path):  # reads the zip's directory only
        from pytest_policyeval.policies.sb3.loader import load_sb3_file

        return load_sb3_file(uri, path, name=policy_label(uri))
    if is_policyeval_checkpoint(path):
        from pytest_policyeval.policies.torch_policy import load_file_policy

        return load_file_policy(uri, path, name=policy_label(uri))
    return _metta(uri, path, options)


def load_remote(uri: str, rest: str, options: LoadOptions) -> Policy:
    """Any scheme with a registered `Source`: download into the data cache, then read the file."""
    from pytest_policyeval.policies.sources import source_for
    from pytest_policyeval.policies.sources.cache import DataCache, default_data_dir, fetch_once

    scheme = split_uri(uri)[0]
    source = source_for(scheme)
    assert source is not None, scheme  # only schemes with a source are routed here
    from pytest_policyeval.storage import StorageError

    cache = DataCache(options.data_dir or default_data_dir())
    try:
        fetched = fetch_once(uri, source, cache, options)
    except StorageError as exc:  # the store's own refusal (a malformed URI, no client library)
        raise PolicyLoadError(str(exc)) from None
    try:
        policy = load_local_checkpoint(uri, fetched.path, options)
    except PolicyLoadError as exc:
        # Named by what the user asked for: the cache's blob path means nothing to them.
        text = str(exc)
        local = str(fetched.path)
        raise PolicyLoadError(
            f"{uri}: {text[len(local) + 2 :]}" if text.startswith(local + ": ") else f"{uri}: {text}"
        ) from None
    policy.info["source"] = fetched.describe()
    return policy


def loader_for(scheme: str) -> Loader | None:
    """The loader of a scheme: registered through `pytest_policyeval_policy_schemes`, else a
    download through a registered source."""
    from pytest_policyeval import registry
    from pytest_policyeval.policies.sources import source_schemes

    schemes = registry.table("pytest_policyeval_policy_schemes")
    if scheme in schemes:
        return registry.lookup("pytest_policyeval_policy_schemes", scheme, "policy URI scheme")
    return load_remote if scheme in source_schemes() else None


def known_schemes() -> list[str]:
    from pytest_policyeval import registry
    from pytest_policyeval.policies.sources import source_schemes

    return sorted(set(registry.table("pytest_policyeval_policy_schemes")) | source_schemes())


def load_policy(uri: str, options: LoadOptions | None = None) -> Policy:
    scheme, rest = split_uri(uri)
    loader = loader_for(scheme)
    if loader is None:
        raise PolicyLoadError(f"{uri}: unknown policy URI scheme '{scheme}://'; known: {known_schemes()}")
    from pytest_policyeval.policies.steady import ATTEMPTS, FileChanged

    for attempt in range(1, ATTEMPTS):
        try:
            return loader(uri, rest, options or LoadOptions())
        except FileChanged:
            time.sleep(0.2 * attempt)  # a save in progress: let it finish
    return loader(uri, rest, options or LoadOptions())  # the last try's error is the load's
