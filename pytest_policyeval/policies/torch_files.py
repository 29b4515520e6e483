"""Reading a `torch.save` file someone else wrote: no code run, sizes checked before allocation.

`torch.load(weights_only=True)` already refuses to run code, but it allocates every storage at
the size the pickle claims: a 600 KB file can ask for 220 GB. So the file is first read as a
zip and its pickle replayed by `_Scan`, an unpickler whose only globals are harmless stand-ins
that record what the file claims (storage sizes, tensor shapes); nothing is imported or called.
Each claimed storage must match the bytes actually stored for it, and the total must stay under
a limit. Only then does torch load it.

Every problem is one `PolicyLoadError` naming the file and the cause.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_policyeval.policies.base import PolicyLoadError

log = logging.getLogger(__name__)

# Bytes of tensor data a checkpoint may hold (Metta's default policy holds about 12 MB).
MAX_TENSOR_BYTES = int(os.environ.get("POLICYEVAL_MAX_CHECKPOINT_BYTES", 4 << 30))
MAX_PICKLE_BYTES = 64 << 20  # the pickle itself only describes tensors: a few KB in practice

ITEM_SIZES = {
    "FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
}  # fmt: skip


@dataclass(frozen=True)
class _StorageType:
    name: str


@dataclass(frozen=True)
class _Storage:
    key: str
    numel: int
    item_size: int


@dataclass
class _Claims:
    storages: dict[str, _Storage] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class _TensorClaim:
    """What the file says a tensor is; stands in for the tensor during the scan."""

    def __init__(self, claims: _Claims, storage: Any, offset: Any, size: Any, stride: Any, *_: Any):
        if (
            not isinstance(storage, _Storage)
            or not _ints(size)
            or not _ints(stride)
            or len(size) != len(stride)
        ):
            claims.problems.append("a tensor record is malformed")
            return
        if any(dim < 0 for dim in size) or not isinstance(offset, int) or offset < 0:
            claims.problems.append(f"a tensor claims a negative size or offset {tuple(size)}")
            return
        if all(size):
            extent = offset + sum((dim - 1) * step for dim, step in zip(size, stride, strict=True)) + 1
            if extent > storage.numel:
                claims.problems.append(
                    f"a tensor of shape {tuple(size)} reaches element {extent} of a "
                    f"{storage.numel}-element storage"
                )


def _ints(values: Any) -> bool:
    return isinstance(values, tuple) and all(isinstance(value, int) for value in values)


class _Scan(pickle.Unpickler):
    """Replays a checkpoint's pickle with stand-ins for the few globals torch writes."""

    def __init__(self, data: bytes, claims: _Claims):
        super().__init__(io.BytesIO(data))
        self.claims = claims

    def find_class(self, module: str, name: str) -> Any:
        claims = self.claims
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return lambda *args: _TensorClaim(claims, *args)
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, *_: data
        if module == "torch" and name in ITEM_SIZES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a weights-only load refuses")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError("a storage record is malformed")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError("a storage record is malformed")
        storage = _Storage(str(key), numel, ITEM_SIZES[kind.name])
        self.claims.storages[storage.key] = storage
        return storage


def _human(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def check_claims(path: Path, max_tensor_bytes: int = MAX_TENSOR_BYTES) -> None:
    """Refuse a file whose pickle claims more than it stores, or more than the limit."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise PolicyLoadError(
            f"{path}: not a PyTorch checkpoint (torch.save's zip format); it starts with "
            f"{path.read_bytes()[:8]!r}"
        ) from None
    with archive:
        entries = {info.filename: info for info in archive.infolist()}
        pickles = [name for name in entries if name.endswith("data.pkl") and name.count("/") == 1]
        if len(pickles) != 1:
            raise PolicyLoadError(f"{path}: a zip file, but not a PyTorch checkpoint (no data.pkl)")
        info = entries[pickles[0]]
        if info.file_size > MAX_PICKLE_BYTES:
            raise PolicyLoadError(
                f"{path}: its pickle claims {_human(info.file_size)}, far more than a checkpoint's"
            )
        claims = _Claims()
        try:
            _Scan(archive.read(info), claims).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise PolicyLoadError(f"{path}: refused: {exc}") from None
        except RecursionError:
            raise PolicyLoadError(f"{path}: refused: its pickle nests too deeply") from None
        prefix = pickles[0][: -len("data.pkl")]
        total = 0
        for storage in claims.storages.values():
            claimed = storage.numel * storage.item_size
            record = entries.get(f"{prefix}data/{storage.key}")
            stored = record.file_size if record is not None else 0
            if claimed != stored:
                raise PolicyLoadError(
                    f"{path}: a tensor claims {_human(claimed)} but the file stores {_human(stored)} "
                    "for it: a corrupt or tampered checkpoint"
                )
            total += claimed
        if total > max_tensor_bytes:
            raise PolicyLoadError(
                f"{path}: holds {_human(total)} of tensors, over the {_human(max_tensor_bytes)} limit "
                "(POLICYEVAL_MAX_CHECKPOINT_BYTES)"
            )
        if claims.problems:
            raise PolicyLoadError(f"{path}: refused: {claims.problems[0]}")


def check_path(path: Path) -> Path:
    """A readable, non-empty regular file, or one message saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise PolicyLoadError(f"{path}: is a directory, not a checkpoint file")
    if not path.exists():
        raise PolicyLoadError(f"{path}: no such file")
    if not path.is_file():
        raise PolicyLoadError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise PolicyLoadError(f"{path}: empty file (0 bytes): not a checkpoint")
    return path


def load_torch_file(path: Path, max_tensor_bytes: int = MAX_TENSOR_BYTES) -> Any:
    """What `torch.save` wrote, loaded with weights only, after its claims were checked."""
    import torch

    path = check_path(path)
    check_claims(path, max_tensor_bytes)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise PolicyLoadError(f"{path}: out of memory while loading") from None
    except Exception as exc:  # torch raises many types for corrupt or unsafe files
        text = str(exc).strip()
        first_line = text.splitlines()[0][:300] if text else type(exc).__name__
        raise PolicyLoadError(f"{path}: cannot read as a PyTorch checkpoint ({first_line})") from None


def _is_state_dict(value: Any) -> bool:
    import torch

    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(key, str) and isinstance(tensor, torch.Tensor) for key, tensor in value.items())
    )


def unwrap_state_dict(raw: Any, source: str) -> dict[str, Any]:
    """The state dict itself, or the one a training loop nested it under (said in the log)."""
    if _is_state_dict(raw):
        return dict(raw)
    if not isinstance(raw, Mapping):
        raise PolicyLoadError(f"{source}: expected a state dict (names to tensors), got {type(raw).__name__}")
    found = [key for key, value in raw.items() if _is_state_dict(value)]
    if len(found) == 1:
        log.warning("%s: the state dict is nested under '%s'; using it", source, found[0])
        return dict(raw[found[0]])
    keys = [str(key) for key in raw][:12]
    if found:
        raise PolicyLoadError(
            f"{source}: several state dicts in one file (under {found}); save the policy's alone "
            "with torch.save(model.state_dict(), path)"
        )
    raise PolicyLoadError(f"{source}: expected a state dict (names to tensors); the file holds keys {keys}")


def check_weights(state: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Floating-point, non-empty tensors as float32: other dtypes are not a policy's weights."""
    import torch

    checked = {}
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            raise PolicyLoadError(
                f"{source}: '{key}' holds {str(tensor.dtype).replace('torch.', '')} values; a policy's "
                "weights are floating point"
            )
        if tensor.numel() == 0:
            raise PolicyLoadError(f"{source}: '{key}' is empty (shape {tuple(tensor.shape)})")
        checked[key] = tensor.float() if tensor.dtype != torch.float32 else tensor
    return checked
