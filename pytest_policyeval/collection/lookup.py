"""Suite names to suite files, the same for `policyeval run`, the service and `pytest --eval-suite`.

A NAME is looked up as ./suites/NAME.yaml, then in $POLICYEVAL_SUITES_DIR, then among the suites
shipped with the package (`pytest_policyeval.suites`, built from the repository's `suites/`
folder), so the shipped suites run from any folder. Imports nothing heavy: the plugin uses it
while pytest is still configuring.
"""

from __future__ import annotations

import os
from pathlib import Path

SUITES_DIR_VAR = "POLICYEVAL_SUITES_DIR"
SUFFIXES = (".yaml", ".yml")


class SuiteNotFound(ValueError):
    pass


def packaged_suites_dir() -> Path | None:
    """The folder of the suites shipped with the package (a real folder: suites include siblings)."""
    from importlib.resources import files

    try:
        root = files("pytest_policyeval.suites")
    except ModuleNotFoundError:  # a source tree used without installing the package
        return None
    return root if isinstance(root, Path) and root.is_dir() else None


def suite_folders(cwd: Path) -> list[Path]:
    """Where a suite NAME is looked for, first match wins."""
    folders = [cwd / "suites"]
    if os.environ.get(SUITES_DIR_VAR):
        folders.append(Path(os.environ[SUITES_DIR_VAR]).expanduser())
    packaged = packaged_suites_dir()
    if packaged is not None:
        folders.append(packaged)
    return folders


def suite_names(folders: list[Path]) -> list[str]:
    """Every NAME that would resolve in these folders."""
    names = {
        path.stem
        for folder in folders
        if folder.is_dir()
        for path in folder.iterdir()
        if path.suffix in SUFFIXES
    }
    return sorted(names)


def find_suite(name: str, cwd: Path | None = None) -> Path:
    """A suite path (relative to `cwd`), or a NAME looked up in `suite_folders`."""
    cwd = cwd or Path.cwd()
    direct = cwd / Path(name).expanduser()
    if direct.is_file():
        return direct
    folders = suite_folders(cwd)
    for folder in folders:
        for suffix in SUFFIXES:
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    known = ", ".join(suite_names(folders)) or "none"
    looked = ", ".join(str(folder) for folder in folders)
    raise SuiteNotFound(
        f"no simulation suite '{name}': not a file, and not a suite name; known names: {known} "
        f"(looked in {looked})"
    )


def suite_args(name: str) -> list[str]:
    """A suite below the working directory is named by its relative path, as pytest names its tests;
    any other (shipped with the package, in $POLICYEVAL_SUITES_DIR) by --eval-suite, which finds it
    the same way, so the printed command works as it is."""
    path, cwd = find_suite(name).resolve(), Path.cwd().resolve()
    if path.is_relative_to(cwd):
        return [path.relative_to(cwd).as_posix()]
    return ["--eval-suite", name]
