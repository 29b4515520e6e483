"""A Stable-Baselines3 zip, read within bounds: nothing in it is unpickled but `policy.pth`.

`BaseAlgorithm.save` (`save_to_zip_file` in stable_baselines3/common/save_util.py, read at
stable-baselines3 2.9.2) writes a zip of stored entries:

    data                        JSON of the algorithm's attributes; those JSON cannot hold are
                                cloudpickled under ":serialized:", beside readable attributes
    policy.pth                  `torch.save` of the policy's state dict
    policy.optimizer.pth, pytorch_variables.pth, system_info.txt    never read here
    _stable_baselines3_version  the version that saved it

`data` is parsed as JSON only; its cloudpickles are never decoded. `policy.pth` (itself a
`torch.save` zip) is copied out and read by `torch_files.load_torch_file`: stored entries only,
its pickle walked and its claimed sizes checked, then `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_policyeval.policies.base import PolicyLoadError
from pytest_policyeval.policies.torch_files import (
    MAX_PICKLE_BYTES,
    MAX_TENSOR_BYTES,
    check_path,
    check_weights,
    load_torch_file,
    unwrap_state_dict,
)

DATA, POLICY, VERSION = "data", "policy.pth", "_stable_baselines3_version"
# `data` holds hyperparameters, spaces and a few cloudpickled buffers (the last observations):
# kilobytes, or a few MB for image observations from many environments.
# SB3's `data` is tens of kilobytes; JSON expands in memory (a byte of '{}' is a dict), so both its
# size and its number of containers are bounded before it is parsed.
MAX_DATA_BYTES = 1 << 20
MAX_CONTAINERS = 100_000
# policy.pth's own zip adds headers and alignment padding to the tensors and the pickle.
ZIP_OVERHEAD = 1 << 20
VERSION_TEXT = re.compile(r"[0-9A-Za-z.+-]{1,32}")

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Archive:
    path: Path
    data: dict[str, Any]  # the `data` entry, parsed as JSON (cloudpickles left as base64 text)
    version: str  # the SB3 version that saved it, "" where the file does not say


def is_sb3_archive(path: str | Path) -> bool:
    """Whether a file is a zip with SB3's `data` and `policy.pth` entries (reads its directory only)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, RuntimeError, NotImplementedError):
        return False
    return DATA in names and POLICY in names


def _open(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, ValueError, EOFError, NotImplementedError):
        with open(path, "rb") as handle:
            head = handle.read(8)
        raise PolicyLoadError(
            f"{path}: not a Stable-Baselines3 model: not a readable zip archive (truncated, or another "
            f"format; it starts with {head!r})"
        ) from None


def _entries(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's entries by name, after checking that each name means one entry."""
    infos = archive.infolist()
    if len({info.filename.lower() for info in infos}) != len(infos):
        raise PolicyLoadError(
            f"{path}: refused: its zip repeats an entry name (perhaps in other letter case)"
        )
    entries = {info.filename: info for info in infos}
    missing = [name for name in (DATA, POLICY) if name not in entries]
    if missing:
        # A zip's directory is at its end: cut short after policy.pth, a model reads as that.
        torch_like = any(name.endswith("/data.pkl") for name in entries)
        hint = "; it reads as a torch.save file (a truncated SB3 model does too)" if torch_like else ""
        raise PolicyLoadError(
            f"{path}: a zip file, but not a Stable-Baselines3 model (no {' or '.join(map(repr, missing))} "
            f"entry; model.save() writes both){hint}"
        )
    for info in (entries[DATA], entries[POLICY]):
        if info.flag_bits & 1:
            raise PolicyLoadError(f"{path}: refused: zip entry '{info.filename}' is encrypted")
    return entries


def _read_bounded(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    if info.file_size > limit:
        raise PolicyLoadError(
            f"{path}: its '{info.filename}' entry claims {info.file_size} bytes, more than a model's "
            f"(at most {limit})"
        )
    with archive.open(info) as handle:
        return handle.read(limit + 1)  # zipfile stops at the claimed size and checks the CRC


def read_archive(path: str | Path) -> Archive:
    """The archive's `data` as JSON and its SB3 version; every problem is one PolicyLoadError."""
    path = check_path(Path(path))
    try:
        with _open(path) as archive:
            entries = _entries(path, archive)
            raw = _read_bounded(path, archive, entries[DATA], MAX_DATA_BYTES)
            version = b""
            if VERSION in entries:
                version = _read_bounded(path, archive, entries[VERSION], 64)
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, ValueError, EOFError) as exc:
        raise PolicyLoadError(
            f"{path}: not a readable zip archive ({str(exc)[:200] or type(exc).__name__})"
        ) from None
    try:
        containers = raw.count(b"{") + raw.count(b"[")
        if containers > MAX_CONTAINERS:
            raise PolicyLoadError(
                f"{path}: its 'data' entry holds {containers} objects and lists, more than a model's "
                f"(at most {MAX_CONTAINERS})"
            )
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: JSON, huge numbers
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:120]
        raise PolicyLoadError(f"{path}: its 'data' entry is not JSON ({reason})") from None
    if not isinstance(data, dict):
        raise PolicyLoadError(f"{path}: its 'data' entry is JSON but not an object of attributes")
    text = version.decode("ascii", "replace").strip()
    return Archive(path, data, text if VERSION_TEXT.fullmatch(text) else "")


def read_policy_state(path: str | Path, max_tensor_bytes: int = MAX_TENSOR_BYTES) -> dict[str, torch.Tensor]:
    """`policy.pth`'s state dict: float32 tensors, read as torch_files reads any checkpoint."""
    path = check_path(Path(path))
    with tempfile.TemporaryDirectory(prefix="policyeval-sb3-") as folder:
        copy = Path(folder) / POLICY
        try:
            with _open(path) as archive:
                info = _entries(path, archive)[POLICY]
                if info.compress_type != zipfile.ZIP_STORED:
                    raise PolicyLoadError(
                        f"{path}: refused: its '{POLICY}' entry is compressed; SB3 stores it as it is "
                        "(save the model again with model.save)"
                    )
                limit = max_tensor_bytes + MAX_PICKLE_BYTES + ZIP_OVERHEAD
                if info.file_size > limit or info.compress_size > path.stat().st_size:
                    raise PolicyLoadError(
                        f"{path}: its '{POLICY}' entry claims {info.file_size} bytes, more than the file "
                        f"holds or than a policy may (at most {limit}; POLICYEVAL_MAX_CHECKPOINT_BYTES)"
                    )
                with archive.open(info) as source, open(copy, "wb") as target:
                    shutil.copyfileobj(source, target, 1 << 20)
        except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, ValueError, EOFError) as exc:
            raise PolicyLoadError(
                f"{path}: cannot read its '{POLICY}' entry ({str(exc)[:200] or type(exc).__name__})"
            ) from None
        where = f"{path} ({POLICY})"
        try:
            raw = load_torch_file(copy, max_tensor_bytes)
        except PolicyLoadError as exc:  # name the model, not the temporary copy
            raise PolicyLoadError(str(exc).replace(str(copy), where)) from None
    return check_weights(unwrap_state_dict(raw, where), where)
