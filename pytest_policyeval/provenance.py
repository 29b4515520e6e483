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
from typing import Any

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
EPISODE_CODE = (
    "runner.py",
    "seeding.py",
    "spec.py",
    "task.py",
    "engines",
    "policies",
)  # task.py: scored_agents


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
    `code_digest` does not see it. The modules of one's own that the file uses count too,
    transitively: every module its source imports (at the top or inside a function, loaded yet
    or not) and, through its globals, the modules of the functions and classes it holds;
    installed packages count by their versions elsewhere. None for this package's own classes
    or where no file is found."""
    import hashlib
    import inspect

    # A class, a function (a registration's factory), or an instance of a class.
    defined = obj if isinstance(obj, type) or inspect.isfunction(obj) else type(obj)
    module_name = getattr(defined, "__module__", None) or ""
    if module_name.split(".", 1)[0] == __name__.split(".", 1)[0]:
        return None
    path = _source_file(defined)
    own = _file_digest(path) if path else None
    if own is None or path is None:  # gone or unreadable: nothing to tell an edit by
        return None
    helpers = _helper_files(module_name, path)
    if not helpers:
        return own  # the digest a lone file always had
    # By module name, not path: the same code checked out elsewhere (a Ray node) plays the same.
    digest = hashlib.sha256(own.encode())
    for name, file in sorted(helpers.items()):
        digest.update(b"\0" + name.encode() + b"\0" + (_file_digest(file) or "unreadable").encode())
    return digest.hexdigest()[:16]


def registered_code(hook: str, name: str | None) -> str | None:
    """A digest of the code that registers `name` through `hook` when it is not this package's
    (a conftest's hook function, with the modules it uses): an edit there changes what the
    name plays even where the registered class's own file is unchanged. None for this package's
    own registrations, an unknown name, or no name."""
    if not name:
        return None
    from pytest_policyeval import registry

    function = registry.registrar(hook, name)
    return None if function is None else outside_code_digest(function)


def policy_registrations(scheme: str, info: dict[str, Any]) -> dict[str, str]:
    """Digests of the outside code registering what a policy was made with: its URI scheme's
    loader, and for a Metta checkpoint (its `info`) its preset and architecture names."""
    wanted = [("pytest_policyeval_policy_schemes", scheme)]
    preset = info.get("preset")
    if isinstance(preset, str):
        wanted.append(("pytest_policyeval_metta_presets", preset))
    wanted += [("pytest_policyeval_metta_architectures", t) for t in _targets(info.get("architecture"))]
    found = {f"{hook.rsplit('_', 1)[-1]}:{name}": registered_code(hook, name) for hook, name in wanted}
    return {key: digest for key, digest in found.items() if digest is not None}


def _targets(node: Any) -> list[str]:
    """Every `_target_` name in a Metta architecture config, nested ones included."""
    if isinstance(node, dict):
        own = [node["_target_"]] if isinstance(node.get("_target_"), str) else []
        return own + [t for value in node.values() for t in _targets(value)]
    if isinstance(node, list):
        return [t for value in node for t in _targets(value)]
    return []


MAX_HELPERS = 256  # modules followed from one class: a bound, not a limit anyone should reach


def _source_file(defined: Any) -> str | None:
    """The file a class or function was defined in. A class's is read from its own methods' code
    where it has any: inspect looks the class's module up by name, and every conftest outside a
    package is "conftest" in sys.modules (the last one imported)."""
    import inspect

    if isinstance(defined, type):
        for value in vars(defined).values():
            function = getattr(value, "__func__", value)  # staticmethod, classmethod
            code = getattr(function, "__code__", None)
            if (
                code is not None
                and inspect.isfunction(function)
                and function.__qualname__.startswith(defined.__qualname__ + ".")
            ):
                return code.co_filename
    try:
        return inspect.getsourcefile(defined)
    except (TypeError, OSError):  # a built-in or C class, or one defined where no file is
        return None


# Source digests as first read in this run. Code is imported once, at the start for conftests
# (primed as each is registered): a file edited mid-run must not key the old code's episodes
# under the new code's digest, where the next run would take them for its own.
_FIRST_READ: dict[str, str | None] = {}


def _file_digest(path: str) -> str | None:
    import hashlib

    if path in _FIRST_READ:
        return _FIRST_READ[path]
    try:
        digest: str | None = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        digest = None
    _FIRST_READ[path] = digest
    return digest


def remember_plugin(module: object) -> None:
    """Read a conftest's or a local plugin module's source as it is imported (see _FIRST_READ),
    where it is one's own (`_own_source`). Only its own file: walking its imports here would cost
    every pytest run, evaluating or not, and would touch (so load) lazily imported modules; its
    helpers are read when a task's episodes are first keyed."""
    file = _own_source(module)
    if file is not None:
        _file_digest(file)


def forget_sources() -> None:
    """As a run starts (its hooks added, before its conftests load): each run in a process
    (pytester) reads the sources afresh, even after one that failed early."""
    _FIRST_READ.clear()


def _helper_files(module_name: str, own_path: str) -> dict[str, str]:
    """{module name: source file} of one's own modules reachable from the module `module_name`
    whose source is `own_path`. Modules are told by their files, not only their names: several
    conftests are all "conftest" in sys.modules, each in turn."""
    import inspect

    found: dict[str, str] = {}
    own = Path(own_path).resolve()
    seen: set[Path] = set()
    todo = [(module_name, own_path)]
    while todo and len(seen) < MAX_HELPERS:
        name, file = todo.pop()
        resolved = Path(file).resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        targets = list(_imported_names(name, file))
        loaded = _loaded_module(name, resolved)
        if loaded is not None:  # what it holds came from somewhere: those modules too
            for value in list(vars(loaded).values()):
                if inspect.ismodule(value):
                    targets.append(value.__name__)
                elif inspect.isclass(value) or inspect.isfunction(value):
                    targets.append(getattr(value, "__module__", None) or "")
        for target in targets:
            target_file = _own_file_of(target)
            if target_file is None or Path(target_file).resolve() in seen:
                continue
            if Path(target_file).resolve() != own:
                found[target] = target_file
            todo.append((target, target_file))
    return found


def _loaded_module(name: str, resolved: Path) -> object | None:
    """The loaded module whose source is `resolved`: by name where that matches, else by file."""
    import sys

    module = sys.modules.get(name)
    if module is None:
        return None  # not loaded (imported inside a function not run yet): its source counts
    if _resolved_file(module) == resolved:
        return module
    for candidate in list(sys.modules.values()):  # another module took the name ("conftest")
        if _resolved_file(candidate) == resolved:
            return candidate
    return None


def _resolved_file(module: object) -> Path | None:
    file = getattr(module, "__file__", None)
    if not isinstance(file, str):
        return None
    try:
        return Path(file).resolve()
    except (OSError, RuntimeError):
        return None


def _own_file_of(name: str) -> str | None:
    """The .py file of the module `name` where it is one's own, loaded or not; None otherwise.
    A module not loaded yet is found without importing it (nor, for a dotted name, its package,
    unless that is loaded already: `from torch.nn import X` must not import torch here)."""
    import importlib.machinery
    import sys

    if not name:
        return None
    module = sys.modules.get(name)
    if module is not None:
        return _own_source(module)
    parent, _, _ = name.rpartition(".")
    search = None
    if parent:
        package = sys.modules.get(parent)
        search = getattr(package, "__path__", None)
        if search is None:
            return None
    try:
        spec = importlib.machinery.PathFinder.find_spec(name, search)
    except (ImportError, ValueError, OSError):
        return None
    origin = getattr(spec, "origin", None)
    if not isinstance(origin, str) or not origin.endswith(".py"):
        return None
    return None if str(Path(origin).resolve()).startswith(_installed_roots()) else origin


def _imported_names(module_name: str, file: str) -> list[str]:
    """The modules the source `file` (of the module `module_name`) imports anywhere, as absolute
    names; [] where it cannot be read or parsed."""
    try:
        stat = Path(file).stat()
    except OSError:
        return []
    # A package's __init__ is its own package; any other module's package is its parent.
    package = module_name if Path(file).name == "__init__.py" else module_name.rpartition(".")[0]
    return list(_imports_in(file, stat.st_mtime_ns, stat.st_size, package))


@lru_cache(maxsize=512)
def _imports_in(file: str, mtime_ns: int, size: int, package: str) -> tuple[str, ...]:
    """The parse behind `_imported_names`, once per version of a file."""
    import ast

    try:
        tree = ast.parse(Path(file).read_bytes())
    except (OSError, SyntaxError, ValueError, RecursionError):
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
