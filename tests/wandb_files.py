"""Reading what W&B's offline mode wrote: the records of a run's `.wandb` file.

The file is W&B's record log: a 7-byte header, then 32 KiB blocks of chunks (crc32, length,
type: full/first/middle/last) holding serialised `wandb_internal_pb2.Record`s.
"""

from __future__ import annotations

import struct
from pathlib import Path

BLOCK, HEADER, CHUNK_HEADER = 32768, 7, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    out, pending, offset = [], b"", HEADER
    while offset + CHUNK_HEADER <= len(data):
        left = BLOCK - offset % BLOCK
        if left < CHUNK_HEADER:  # the rest of a block is padding
            offset += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[offset : offset + CHUNK_HEADER])
        if kind == 0 and length == 0:
            break
        chunk = data[offset + CHUNK_HEADER : offset + CHUNK_HEADER + length]
        offset += CHUNK_HEADER + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def offline_runs(root: Path) -> list[Path]:
    return sorted(root.glob("wandb/offline-run-*/run-*.wandb"))


def logged(path: Path) -> dict:
    """What a run logged: summary keys and values, history keys, artifacts (name, type, files)."""
    import json

    summary, history, artifacts = {}, set(), []
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "history":
            history.update(item.key or "/".join(item.nested_key) for item in record.history.item)
        elif kind == "artifact":
            files = sorted(entry.path for entry in record.artifact.manifest.contents)
            artifacts.append((record.artifact.name, record.artifact.type, files))
    return {"summary": summary, "history": history, "artifacts": artifacts}
