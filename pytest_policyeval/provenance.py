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
    `code_digest` does not see it. The modules of one's own that the file uses (a helper imported
    by name, the module of a function or class it imports) count too, transitively; installed
    packages count by their versions elsewhere. None for this package's own classes or where no
    file is found."""
    import hashlib
    import inspect
    import sys

    # A class, a function (a registration's factory), or an instance of a class.
    defined = obj if isinstance(obj, type) or inspect.isfunction(obj) else type(obj)
    module_name = getattr(defined, "__module__", None) or ""
    if module_name.split(".", 1)[0] == __name__.split(".", 1)[0]:
        return None
    try:
        path = inspect.getsourcefile(defined)
    except (TypeError, OSError):  # a built-in or C class, or one defined where no file is
        return None
    own = _file_digest(path) if path else None
    if own is None:  # gone or unreadable: nothing to tell an edit by
        return None
    helpers = _helper_files(sys.modules.get(module_name), path)
    if not helpers:
        return own  # the digest a lone file always had
    # By module name, not path: the same code checked out elsewhere (a Ray node) plays the same.
    digest = hashlib.sha256(own.encode())
    for name, file in sorted(helpers.items()):
        digest.update(b"\0" + name.encode() + b"\0" + (_file_digest(file) or "unreadable").encode())
    return digest.hexdigest()[:16]


MAX_HELPERS = 256  # modules followed from one class: a bound, not a limit anyone should reach


def _file_digest(path: str) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def _helper_files(module: object, own_path: str) -> dict[str, str]:
    """Source files of one's own modules reachable from `module`: those its source imports
    (anywhere in it, values included), and through its globals, modules and the modules of its
    functions and classes. Of the globals only modules, classes and functions are looked at (an
    arbitrary object's attributes could run code)."""
    import inspect
    import sys

    found: dict[str, str] = {}
    seen: set[str] = set()
    own = Path(own_path).resolve()
    todo = [module] if inspect.ismodule(module) else []
    while todo and len(seen) < MAX_HELPERS:
        current = todo.pop()
        if current.__name__ in seen:
            continue
        seen.add(current.__name__)
        targets = [sys.modules.get(name) for name in _imported_names(current)]
        for value in list(vars(current).values()):
            if inspect.ismodule(value):
                targets.append(value)
            elif inspect.isclass(value) or inspect.isfunction(value):
                targets.append(sys.modules.get(getattr(value, "__module__", None) or ""))
        for target in targets:
            if target is None or target.__name__ in seen:
                continue
            file = _own_source(target)
            if file is not None:
                if Path(file).resolve() != own:
                    found[target.__name__] = file
                todo.append(target)
    return found


def _imported_names(module: object) -> list[str]:
    """The modules `module`'s source imports anywhere (a constant taken by `from m import X`
    leaves no trace in its globals but the statement), as absolute names; [] where the source
    cannot be read or parsed."""
    file = _own_source(module)
    if file is None:
        return []
    try:
        stat = Path(file).stat()
    except OSError:
        return []
    package = getattr(module, "__package__", None) or ""
    return list(_imports_in(file, stat.st_mtime_ns, stat.st_size, package))


@lru_cache(maxsize=512)
def _imports_in(file: str, mtime_ns: int, size: int, package: str) -> tuple[str, ...]:
    """The parse behind `_imported_names`, once per version of a file."""
    import ast

    try:
        tree = ast.parse(Path(file).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return ()
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1 packages
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, *([base] if base else [])])
            if base:
                names.append(base)
                # `from package import submodule` imports a module too
                names += [f"{base}.{alias.name}" for alias in node.names if alias.name != "*"]
    return tuple(names)


def _own_source(module: object) -> str | None:
    """The .py file of a module of one's own: not the standard library's, not an installed
    package's, not this package's; None otherwise."""
    file = getattr(module, "__file__", None)
    if not isinstance(file, str) or not file.endswith(".py"):
        return None
    name = getattr(module, "__name__", "")
    if name.split(".", 1)[0] == __name__.split(".", 1)[0]:
        return None
    resolved = str(Path(file).resolve())
    return None if resolved.startswith(_installed_roots()) else file


@lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    import site
    import sysconfig

    roots = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    roots.add(site.getusersitepackages())
    return tuple(str(Path(root).resolve()) + "/" for root in roots if root)
