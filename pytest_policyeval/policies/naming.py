"""What a policy URI is called: its scheme and rest, and the short label test ids and reports use."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

BARE_SCHEMES = ("random",)  # names that stand for their URI without "://"
# Schemes whose rest is a path: their label is the file's stem.
PATH_SCHEMES = {"file", "pytorch", "sb3"}


def split_uri(uri: str) -> tuple[str, str]:
    """('file', 'a/b.pt') for 'file://a/b.pt' or a bare 'a/b.pt'; ('random', '') for 'random'."""
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        return scheme.lower(), rest
    if uri in BARE_SCHEMES:
        return uri, ""
    return "file", uri


def policy_label(uri: str) -> str:
    """A short, readable name for test ids: the file stem, or the name for built-ins.

    random:// -> random, scripted://navigator -> navigator, file://ckpts/nav.pt -> nav,
    https://host/models/nav.pt?x=1 -> nav, wandb://team/proj/model/nav:v3 -> nav:v3.
    """
    scheme, rest = split_uri(uri)
    if scheme in ("random", "scripted"):
        return rest.strip("/") or scheme
    tag = ""
    if scheme == "sb3":  # its query picks the action selection: keep the two modes apart
        rest, _, query = rest.partition("?")
        tag = "-stochastic" if "deterministic=false" in query.lower() else ""
    if scheme not in PATH_SCHEMES:  # a remote or plugin scheme: the last segment of its path
        rest = rest.split("?", 1)[0].split("#", 1)[0]
    stem = PurePosixPath(rest.rstrip("/")).name
    for suffix in (".pt", ".pth", ".ckpt", ".zip"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    # The label becomes part of test ids, which reports and terminals show as they are: keep it
    # to characters that mean nothing in HTML or a shell.
    return (UNSAFE_LABEL.sub("_", stem)[:64] or scheme) + tag


UNSAFE_LABEL = re.compile(r"[^A-Za-z0-9_.:+=-]")
