"""What produced a result: package versions and the git revision of the project under test.

Cheap to call (package metadata and one `git` call, no imports of the packages themselves), so
the plugin can record it in every result file and report.
"""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

PACKAGES = ("pytest-policyeval", "mettagrid", "torch", "numpy", "pytest")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name.replace("-", "_")] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@lru_cache(maxsize=8)
def git_revision(path: Path) -> str | None:
    """The commit checked out at `path`, with `+dirty` if tracked files changed; None outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=path, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}+dirty" if dirty else sha


# The modules whose code decides what happens in an episode (not how it is judged or reported).
EPISODE_CODE = ("runner.py", "seeding.py", "spec.py", "engines", "policies")


@lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of this package's source that plays episodes, so kept episodes made by other
    code are played again even when the version number did not change."""
    import hashlib

    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in EPISODE_CODE:
        path = root / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def outside_code_digest(obj: object) -> str | None:
    """A digest of the source file defining `obj`'s class when that class is not this package's
    (a plugin's or a conftest's engine or policy): its code decides episodes too, and
    `code_digest` does not see it. None for this package's own classes or where no file is found."""
    import hashlib
    import inspect

    cls = obj if isinstance(obj, type) else type(obj)
    if cls.__module__.split(".", 1)[0] == __name__.split(".", 1)[0]:
        return None
    try:
        path = inspect.getsourcefile(cls)
    except (TypeError, OSError):  # a built-in or C class, or one defined where no file is
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if path else None
    except OSError:  # gone or unreadable: nothing to tell an edit by
        return None
