"""What a `torch.save` pickle claims, found by replaying it with stand-ins: nothing imported or called.

`Scan` is an unpickler whose only globals are harmless stand-ins: storage types and dtypes become
markers, `_rebuild_tensor_v2` becomes a `_TensorClaim` that records the shape and checks it
against its storage, and bytes are decoded only as torch writes them. torch_files.py checks the
claims against the bytes the zip stores and the size limit before torch loads anything.
"""

from __future__ import annotations

import io
import math
import pickle
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

MAX_DIMS = 64
MAX_DIM = 1 << 62
FLOAT_BYTES = 4  # every weight is read as float32

ITEM_SIZES = {
    "FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
}  # fmt: skip
# Harmless values torch's weights-only loader also accepts, found in training loops' checkpoints.
SAFE_GLOBALS = {
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "complex"): complex,
    ("__builtin__", "set"): set, ("__builtin__", "frozenset"): frozenset,
    ("collections", "OrderedDict"): OrderedDict,
}  # fmt: skip


@dataclass(frozen=True)
class _Marker:
    """Stands in for a torch global (a storage type, dtype, device or Size) during the scan."""

    name: str

    def __call__(self, *args: Any) -> _Marker:
        return self


@dataclass(frozen=True)
class _Storage:
    key: str
    numel: int
    item_size: int


@dataclass
class Claims:
    storages: dict[str, _Storage] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # Elements of the tensors as loaded: a view may repeat its storage (stride 0), so a tiny file
    # can stand for a huge tensor once it is copied (as check_weights' float() does).
    elements: int = 0


def _shape_text(size: tuple) -> str:
    return str(tuple(size)) if len(size) <= 6 else f"({', '.join(map(str, size[:6]))}, ... {len(size)} dims)"


def _dims(values: Any) -> bool:
    return (
        isinstance(values, tuple)
        and len(values) <= MAX_DIMS
        and all(type(value) is int and -MAX_DIM < value < MAX_DIM for value in values)
    )


class _TensorClaim:
    """What the file says a tensor is; stands in for the tensor during the scan."""

    def __init__(self, claims: Claims, storage: Any, offset: Any, size: Any, stride: Any, *_: Any):
        if (
            not isinstance(storage, _Storage)
            or not _dims(size)
            or not _dims(stride)
            or len(size) != len(stride)
        ):
            claims.problems.append("a tensor record is malformed")
            return
        if any(dim < 0 for dim in size) or type(offset) is not int or not 0 <= offset < MAX_DIM:
            claims.problems.append(f"a tensor claims a negative size or offset {_shape_text(size)}")
            return
        claims.elements += math.prod(size)
        if all(size):
            extent = offset + sum((dim - 1) * abs(step) for dim, step in zip(size, stride, strict=True)) + 1
            if extent > storage.numel:
                claims.problems.append(
                    f"a tensor of shape {_shape_text(size)} reaches element {extent} of a "
                    f"{storage.numel}-element storage"
                )


class Scan(pickle.Unpickler):
    """Replays a checkpoint's pickle with stand-ins for the few globals torch writes."""

    def __init__(self, data: bytes, claims: Claims):
        super().__init__(io.BytesIO(data))
        self.claims = claims

    def find_class(self, module: str, name: str) -> Any:
        claims = self.claims
        if (module, name) in SAFE_GLOBALS:
            return SAFE_GLOBALS[module, name]
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return lambda *args: _TensorClaim(claims, *args)
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return lambda data, *_: data
        if (module, name) == ("_codecs", "encode"):  # how protocol 2 writes bytes
            return _encode
        if module == "torch" and (name in ITEM_SIZES or name in ("Size", "device") or _is_dtype(name)):
            return _Marker(name)
        raise pickle.UnpicklingError(f"it names {module[:80]}.{name[:80]}, which this loader does not accept")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError("a storage record is malformed")
        _, kind, key, _location, numel = pid
        valid = isinstance(kind, _Marker) and kind.name in ITEM_SIZES and isinstance(key, str)
        if not valid or type(numel) is not int or not 0 <= numel < MAX_DIM:
            raise pickle.UnpicklingError("a storage record is malformed")
        storage = _Storage(key[:64], numel, ITEM_SIZES[kind.name])
        self.claims.storages[storage.key] = storage
        return storage


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """`_codecs.encode` as pickles of bytes use it: latin-1 or UTF-8 text only (another codec,
    punycode say, may take time quadratic in the text)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise pickle.UnpicklingError(
            f"it encodes bytes with {str(encoding)[:40]!r}, which this loader does not accept"
        )
    return text.encode(encoding)


def _is_dtype(name: str) -> bool:
    return name in _dtype_names()


@lru_cache(maxsize=1)
def _dtype_names() -> frozenset[str]:
    """torch's dtype names, read from its namespace as it stands: getattr(torch, name) could run
    torch's module __getattr__, which imports submodules and calls deprecated functions."""
    import torch

    return frozenset(name for name, value in vars(torch).items() if isinstance(value, torch.dtype))
