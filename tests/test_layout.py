"""The package's layout holds: layers import only downwards, no import cycles, small modules.

Every `import` of a package module counts, wherever it is written (module level, inside a
function, under TYPE_CHECKING): a lazy import up the layers is still an upward dependency. Layers,
top to bottom, as the README's "How the code is laid out" describes them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_policyeval"
# (layer, module prefixes), top to bottom. A module belongs to the first layer with a prefix of it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry", ("plugin", "options", "option_values", "html_plugin", "cli", "service", "serve", "__main__")),
    ("ray backend", ("ray_backend",)),
    ("collection", ("collection",)),
    ("evaluation", ("evaluation", "controller", "worker", "keys", "gating", "rounds", "merge",
                    "episode_cache", "watchdog")),
    ("runner", ("runner",)),
    ("engines", ("engines",)),
    ("policies", ("policies",)),
    ("reporting", ("reporting",)),
    ("gates", ("gates", "scoring")),
    ("foundation", ("spec", "task", "results", "registry", "hookspec", "atomic", "redact", "seeding",
                    "provenance", "completeness", "storage", "signals", "__init__")),
]  # fmt: skip
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)


def rank(module: str) -> int:
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS (and the README)")


MODULE_TEXT = re.compile(r"^pytest_policyeval((?:\.\w+)+)(?::\w+)?$")


def docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes (they name modules in prose, which is no dependency)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def imports(path: Path, text: str | None = None) -> set[str]:
    """Modules `path` depends on: imports (absolute or relative), and "pytest_policyeval.x[:name]"
    strings, which a registry or `importlib` turns into imports."""
    module = module_name(path).split(".")
    package = module if path.name == "__init__.py" else module[:-1]
    tree = ast.parse(path.read_text() if text is None else text)
    prose = docstrings(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, `level - 1` packages up
                base = ".".join([*package[: len(package) - (node.level - 1)], *([base] if base else [])])
                base = f"pytest_policyeval.{base}" if base else "pytest_policyeval"
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            match = MODULE_TEXT.match(node.value)
            if match:
                names = ["pytest_policyeval" + match.group(1)]
        for name in names:
            if name.startswith("pytest_policyeval."):
                found.add(name.removeprefix("pytest_policyeval."))
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for module, path in modules.items():
        # `from package import name` names a module only where such a module exists.
        edges[module] = {target for target in imports(path) if target in modules and target != module}
    return edges


def test_every_import_goes_down_the_layers_or_stays_in_its_own() -> None:
    upward = [
        f"{module} ({LAYERS[rank(module)][0]}) imports {target} ({LAYERS[rank(target)][0]})"
        for module, targets in sorted(graph().items())
        for target in sorted(targets)
        if rank(target) < rank(module)
    ]
    assert upward == []


def test_no_import_cycles() -> None:
    edges = graph()
    # A package's __init__ that re-exports its own modules is not a cycle through them.
    for module in edges:
        edges[module] = {t for t in edges[module] if not module.startswith(t + ".")}
    cycles, state, stack = [], dict.fromkeys(edges, 0), []

    def visit(node: str) -> None:
        state[node], _ = 1, stack.append(node)
        for target in sorted(edges[node]):
            if state[target] == 1:
                cycles.append(" -> ".join([*stack[stack.index(target) :], target]))
            elif state[target] == 0:
                visit(target)
        state[node], _ = 2, stack.pop()

    for node in sorted(edges):
        if state[node] == 0:
            visit(node)
    assert cycles == []


def test_no_module_is_over_400_lines() -> None:
    long = {
        module_name(path): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_the_checks_see_a_violation() -> None:
    # The graph is real: the plugin reaches the runner only through the layers below it.
    edges = graph()
    assert "runner" in edges["evaluation"] and "engines" in edges["runner"]
    assert rank("plugin") < rank("runner") < rank("spec")
    # A registry's "module:attribute" text counts as the import it becomes.
    assert "engines.mettagrid.engine" in edges["engines.mettagrid.hooks"]


def test_relative_imports_and_module_strings_are_edges() -> None:
    text = "from ...evaluation import Evaluation\nREF = 'pytest_policyeval.controller:Controller'\n"
    found = imports(PACKAGE / "engines" / "mettagrid" / "engine.py", text)
    assert {"evaluation", "controller"} <= found
