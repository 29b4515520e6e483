"""Reading a `torch.save` file someone else wrote: no code run, sizes checked before allocation.

`torch.load(weights_only=True)` already refuses to run code, but it allocates every storage at
the size the pickle claims (a 600 KB file can ask for 220 GB), and a pickle nested deeply enough
crashes the interpreter. So the file is first checked as a zip (stored entries only, as
`torch.save` writes them: no decompression bombs; one `data.pkl`, names unique even ignoring case,
so torch reads what was checked), its pickle's opcodes are walked for size and nesting depth,
and the pickle is replayed by `pickle_claims.Scan`, an unpickler whose only globals are harmless
stand-ins that record what the file claims (storage sizes, tensor shapes); nothing is imported or
called. Each
claimed storage must match the bytes actually stored for it, and the total must stay under a
limit. Only then does torch load it.

Every problem is one `PolicyLoadError` naming the file and the cause.
"""

from __future__ import annotations

import logging
import os
import pickle
import pickletools
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_policyeval.policies.base import PolicyLoadError
from pytest_policyeval.policies.pickle_claims import FLOAT_BYTES, Claims, Scan

log = logging.getLogger(__name__)

# Bytes of tensor data a checkpoint may hold (Metta's default policy holds about 12 MB).
MAX_TENSOR_BYTES = int(os.environ.get("POLICYEVAL_MAX_CHECKPOINT_BYTES", 4 << 30))
MAX_PICKLE_BYTES = 4 << 20  # the pickle only describes tensors: a few KB for a policy
MAX_OPCODES = 1_000_000
MAX_DEPTH = 100  # nesting of containers; a state dict nests about 5 deep
LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8"  # torch.save before torch 1.6

CONTAINER_OPS = {"APPEND", "APPENDS", "SETITEM", "SETITEMS", "ADDITEMS", "BUILD"}


def _human(size: int) -> str:
    if size >= 1 << 60:
        return f"{size:.3g} bytes"
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if value < 1024 or unit == "PB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def _check_opcodes(data: bytes) -> None:
    """Bound the pickle's work and nesting before anything is built from it.

    Each stack entry carries the depth of what it holds; a container op (APPEND, SETITEM, BUILD...)
    keeps its container's entry, anything else that consumes entries makes one a level deeper.
    """
    stack: list[int] = []
    marks: list[int] = []
    memo: dict[Any, int] = {}
    for count, (op, arg, _) in enumerate(pickletools.genops(data)):
        if count > MAX_OPCODES:
            raise pickle.UnpicklingError(f"its pickle runs over {MAX_OPCODES} operations")
        name = op.name
        if name == "MARK":
            marks.append(len(stack))
            continue
        if name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(arg, 0))
            continue
        if name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo[arg if name != "MEMOIZE" else len(memo)] = stack[-1] if stack else 0
            continue
        if name == "DUP":
            stack.append(stack[-1] if stack else 0)
            continue
        before = [item.name for item in op.stack_before]
        items: list[int] = []
        if "mark" in before:
            start = marks.pop() if marks else 0
            items, stack[start:] = stack[start:], []
            fixed = before.index("mark")
        else:
            fixed = len(before)
        below = stack[len(stack) - fixed :] if fixed else []
        del stack[len(stack) - len(below) :]
        if name in CONTAINER_OPS:
            depth = max([below[0] if below else 0] + [d + 1 for d in below[1:] + items])
        else:
            depth = 1 + max(below + items) if below or items else 0
        if depth > MAX_DEPTH:
            raise pickle.UnpicklingError(f"its pickle nests more than {MAX_DEPTH} levels deep")
        stack.extend([depth] * len(op.stack_after))


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        with open(path, "rb") as handle:
            head = handle.read(len(LEGACY_MAGIC))
        if head == LEGACY_MAGIC:
            raise PolicyLoadError(
                f"{path}: a torch.save file in the format before torch 1.6; load it with torch and save it "
                "again (torch.save writes the current format)"
            ) from None
        if head.startswith(b"PK\x03\x04"):  # a zip's first entry, but no directory at its end
            raise PolicyLoadError(
                f"{path}: a zip file cut short or damaged (its directory, at the end, is missing); "
                "download or copy it again"
            ) from None
        raise PolicyLoadError(
            f"{path}: not a PyTorch checkpoint (torch.save's zip format); it starts with {head[:8]!r}"
        ) from None
    try:
        _check_nothing_before(path, archive)
    except BaseException:
        archive.close()
        raise
    return archive


def _check_nothing_before(path: Path, archive: zipfile.ZipFile) -> None:
    """Refuses a zip with bytes in front of it. Python's zipfile shifts every offset by those
    bytes; torch's reader takes the offsets as written. So such a file can show the checks one
    archive and torch another (or a truncated file shows an archive stored inside it)."""
    with open(path, "rb") as handle:
        end = zipfile._EndRecData(handle)  # the record zipfile itself read; stable since Python 2
    if end is None:
        return  # zipfile opened it, so it found this record; nothing to compare against
    written = end[zipfile._ECD_OFFSET]  # where the central directory says it starts
    if archive.start_dir != written:
        raise PolicyLoadError(
            f"{path}: refused: {archive.start_dir - written} bytes precede its zip archive (a "
            "truncated file, or two archives in one); torch.save writes the archive from the start"
        )


def _pickle_entry(path: Path, archive: zipfile.ZipFile) -> tuple[zipfile.ZipInfo, dict[str, zipfile.ZipInfo]]:
    """The one `data.pkl` entry, after checking the archive is laid out as torch.save lays it out."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len({name.lower() for name in names}) != len(names):
        raise PolicyLoadError(
            f"{path}: refused: its zip repeats an entry name (perhaps in other letter case)"
        )
    packed = [
        info.filename for info in infos if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 1
    ]
    if packed:
        raise PolicyLoadError(
            f"{path}: refused: zip entry '{packed[0][:80]}' is compressed or encrypted; torch.save stores "
            "entries as they are"
        )
    pickles = [info for info in infos if info.filename.lower().endswith("data.pkl")]
    if len(pickles) != 1 or pickles[0].filename.count("/") != 1:
        raise PolicyLoadError(
            f"{path}: a zip file, but not a PyTorch checkpoint (not one data.pkl at its top)"
        )
    if pickles[0].file_size > MAX_PICKLE_BYTES:
        raise PolicyLoadError(
            f"{path}: its pickle is {_human(pickles[0].file_size)}, far more than a checkpoint's "
            f"(at most {_human(MAX_PICKLE_BYTES)})"
        )
    return pickles[0], {info.filename: info for info in infos}


def read_pickle(path: Path) -> tuple[bytes, dict[str, zipfile.ZipInfo], str]:
    """The checkpoint's pickle bytes, its zip entries and their folder prefix, or a refusal."""
    try:
        with _open_zip(path) as archive:
            info, entries = _pickle_entry(path, archive)
            with archive.open(info) as handle:
                data = handle.read(MAX_PICKLE_BYTES + 1)
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, ValueError, EOFError) as exc:
        raise PolicyLoadError(
            f"{path}: not a readable zip file ({str(exc)[:200] or type(exc).__name__})"
        ) from None
    return data, entries, info.filename[: -len("data.pkl")]


def check_claims(path: Path, max_tensor_bytes: int = MAX_TENSOR_BYTES) -> None:
    """Refuse a file whose pickle claims more than it stores, or more than the limit."""
    data, entries, prefix = read_pickle(path)
    claims = Claims()
    try:
        _check_opcodes(data)
        Scan(data, claims).load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        LookupError,
    ) as exc:
        raise PolicyLoadError(f"{path}: refused: {str(exc)[:300]}") from None
    except (RecursionError, MemoryError, OverflowError):
        raise PolicyLoadError(f"{path}: refused: its pickle is too large or too deeply nested") from None
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
    loaded = claims.elements * FLOAT_BYTES  # as float32, which every weight is read as
    if loaded > max_tensor_bytes:
        raise PolicyLoadError(
            f"{path}: its tensors stand for {_human(loaded)} once loaded (views repeating a small "
            f"storage), over the {_human(max_tensor_bytes)} limit (POLICYEVAL_MAX_CHECKPOINT_BYTES)"
        )
    if claims.problems:
        raise PolicyLoadError(f"{path}: refused: {claims.problems[0]}")


def check_path(path: Path) -> Path:
    """A readable, non-empty regular file, or one message saying what it is instead."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        reason = (
            "no such file" if isinstance(exc, FileNotFoundError) else (exc.strerror or type(exc).__name__)
        )
        raise PolicyLoadError(f"{path}: {reason.lower() if reason[0].isupper() else reason}") from None
    if stat.S_ISDIR(info.st_mode):
        raise PolicyLoadError(f"{path}: is a directory, not a checkpoint file")
    if not stat.S_ISREG(info.st_mode):
        raise PolicyLoadError(f"{path}: not a regular file (a device, pipe or socket)")
    if info.st_size == 0:
        raise PolicyLoadError(f"{path}: empty file (0 bytes): not a checkpoint")
    if not os.access(path, os.R_OK):
        raise PolicyLoadError(f"{path}: permission denied")
    return path


def _torch_reason(exc: Exception) -> str:
    """The cause in one line; torch's weights-only message buries it under advice to unpickle."""
    text = str(exc).strip()
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1].strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


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
        raise PolicyLoadError(f"{path}: cannot read as a PyTorch checkpoint ({_torch_reason(exc)})") from None


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
    keys = [str(key)[:40] for key in raw][:12]
    if found:
        raise PolicyLoadError(
            f"{source}: several state dicts in one file (under {found[:6]}); save the policy's alone "
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
                f"{source}: '{key[:80]}' holds {str(tensor.dtype).replace('torch.', '')} values; a policy's "
                "weights are floating point"
            )
        if tensor.numel() == 0:
            raise PolicyLoadError(f"{source}: '{key[:80]}' is empty (shape {tuple(tensor.shape)})")
        checked[key] = tensor.float() if tensor.dtype != torch.float32 else tensor
    return checked
