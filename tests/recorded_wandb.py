"""A recorded W&B artifact store standing in for `wandb.Api()` behind `storage.wandb.API_FACTORY`.

    ROOT/ENTITY/PROJECT/NAME/manifest.json   {"type", "versions": {"v0": digest}, "aliases": {...}}
    ROOT/ENTITY/PROJECT/NAME/v0/<files>

Lookups fail with the real client's exception types and messages' shapes, so the resolver's
error handling is exercised as against the server. RECORDED_WANDB_DOWN=1 plays an outage.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path


def record_artifact(
    root: Path, qualified: str, files: dict[str, bytes], kind: str = "model", aliases=("latest",)
) -> str:
    """Add a new version of ENTITY/PROJECT/NAME holding `files`; returns its version (vN)."""
    folder = root / qualified
    manifest_path = folder / "manifest.json"
    manifest = (
        json.loads(manifest_path.read_text()) if manifest_path.exists() else {"versions": {}, "aliases": {}}
    )
    version = f"v{len(manifest['versions'])}"
    (folder / version).mkdir(parents=True)
    digest = hashlib.md5()
    for name, body in sorted(files.items()):
        (folder / version / name).write_bytes(body)
        digest.update(name.encode() + body)
    manifest["type"] = kind
    manifest["versions"][version] = digest.hexdigest()
    for alias in aliases:
        manifest["aliases"][alias] = version
    manifest_path.write_text(json.dumps(manifest))
    return version


class RecordedArtifact:
    def __init__(self, folder: Path, kind: str, version: str, digest: str, aliases: list[str]):
        self._folder, self.type, self.version, self.digest, self.aliases = (
            folder,
            kind,
            version,
            digest,
            aliases,
        )

    def download(self, root: str | None = None) -> str:
        target = Path(root)
        shutil.copytree(self._folder, target, dirs_exist_ok=True)
        return str(target)


class RecordedApi:
    def __init__(self, root: str | Path):
        from wandb.errors import CommError

        if os.environ.get("RECORDED_WANDB_DOWN"):
            raise CommError("Failed to connect to api.wandb.ai: [Errno 111] Connection refused")
        self.root = Path(root)

    def artifact(self, name: str, type: str | None = None) -> RecordedArtifact:
        from wandb.errors import CommError

        path, _, wanted = name.partition(":")
        manifest_path = self.root / path / "manifest.json"
        if not manifest_path.exists():
            raise CommError(f"artifact '{name}' not found in '{path.rsplit('/', 1)[0]}'")
        manifest = json.loads(manifest_path.read_text())
        version = manifest["aliases"].get(wanted, wanted)
        if version not in manifest["versions"]:
            raise CommError(f"artifact version '{wanted}' not found for '{path}'")
        aliases = [alias for alias, v in manifest["aliases"].items() if v == version]
        folder = self.root / path / version
        return RecordedArtifact(folder, manifest["type"], version, manifest["versions"][version], aliases)


# A conftest.py for pytester runs: points the resolver's seam at $RECORDED_WANDB.
CONFTEST = """
import os
import recorded_wandb
from pytest_policyeval.storage import wandb as store

store.API_FACTORY = lambda: recorded_wandb.RecordedApi(os.environ["RECORDED_WANDB"])
"""
