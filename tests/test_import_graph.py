"""The import graph of energyprof: no circles among module-level imports, few function-level imports of our own
modules, and the torch-free parts (spec, analysis, store, charts, the pages) never import torch or transformers."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "energyprof"


@dataclass
class ImportGraph:
    """Which energyprof modules each module imports: at module level (run on import) and inside functions."""

    modules: dict[str, Path]
    top: dict[str, set[str]] = field(default_factory=dict)
    inner: list[tuple[str, str, int]] = field(default_factory=list)
    """(importing module, imported module, line) for every import of ours inside a function."""

    def cycles(self) -> list[list[str]]:
        """Every circle among module-level imports (one per strongly connected set of modules)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        found: list[list[str]] = []

        def visit(node: str) -> None:  # Tarjan's strongly connected components
            index[node] = low[node] = len(index)
            stack.append(node)
            for target in sorted(self.top.get(node, ())):
                if target not in index:
                    visit(target)
                    low[node] = min(low[node], low[target])
                elif target in stack:
                    low[node] = min(low[node], index[target])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in self.top.get(node, ()):
                    found.append(sorted(group))

        for module in sorted(self.modules):
            if module not in index:
                visit(module)
        return found


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict[str, Path]) -> set[str]:
    """The energyprof modules one import statement loads (`from pkg import mod` names the module itself)."""
    if isinstance(node, ast.Import):
        names = {alias.name for alias in node.names}
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[:len(package) - node.level + 1]
            base = ".".join(package + ([base] if base else []))
        names = {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names}
    return {name for name in names if name in modules}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_graph(root: Path = REPO) -> ImportGraph:
    """Parse every module of energyprof under root (ast, no import)."""
    modules = {module_name(p, root): p for p in sorted((root / "energyprof").rglob("*.py"))}
    graph = ImportGraph(modules)
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        top: set[str] = set()
        pending: list[ast.stmt] = list(tree.body)
        while pending:  # module level, including if/try blocks, but not `if TYPE_CHECKING:` ones
            node = pending.pop()
            if isinstance(node, ast.Import | ast.ImportFrom):
                top |= _targets(node, module, is_package, modules)
            elif isinstance(node, ast.If) and not _type_checking(node):
                pending += node.body + node.orelse
            elif isinstance(node, ast.Try):
                pending += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
        graph.top[module] = top - {module}
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(function):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        graph.inner += [(module, t, node.lineno) for t in sorted(_targets(node, module, is_package,
                                                                                          modules))]
    graph.inner = sorted(set(graph.inner))
    return graph


GRAPH = import_graph()

MAX_FUNCTION_LEVEL_IMPORTS = 9
"""Function-level imports of our own modules left (49 before issue 16's move, 37 statements just after it, 9 now):
each keeps torch, transformers, requests or a power source's library (zeus, pynvml) out of a torch-free import
path: the five sources in power.registry, the two workloads in runtimes, the model loader in runner.api and the
replay in runner.engine."""


def test_the_graph_sees_the_package() -> None:
    assert {"energyprof.runner.engine", "energyprof.spec.params", "energyprof.runtimes.transformers.loop",
            "energyprof.commands.profile", "energyprof.store"} <= set(GRAPH.modules)
    assert "energyprof.runtimes.transformers.models" in GRAPH.top["energyprof.runtimes.transformers.loop"]


def test_no_import_circles_at_module_level() -> None:
    assert GRAPH.cycles() == []


def test_the_three_old_circles_are_gone() -> None:
    top = GRAPH.top
    assert "energyprof.runtimes.transformers.loop" not in top["energyprof.spec.params"]
    assert not ("energyprof.commands.prompt_file" in top["energyprof.commands.profile"]
                and "energyprof.commands.profile" in top["energyprof.commands.prompt_file"])
    assert not ("energyprof.runtimes.endpoint.workload" in top["energyprof.runtimes"]
                and "energyprof.runtimes" in top["energyprof.runtimes.endpoint.workload"])
    inner = {(a, b) for a, b, _ in GRAPH.inner}
    assert ("energyprof.commands.prompt_file", "energyprof.commands.profile") not in inner


def test_function_level_imports_of_our_own_modules_stay_few() -> None:
    statements = {(module, line) for module, _, line in GRAPH.inner}
    assert len(statements) <= MAX_FUNCTION_LEVEL_IMPORTS, "\n".join(f"{m}:{line} -> {t}" for m, t, line in GRAPH.inner)


TORCH_FREE = ("energyprof.spec", "energyprof.analysis", "energyprof.store", "energyprof.charts", "energyprof.ui",
              "energyprof.export", "energyprof.sweep_table", "energyprof.runner.jobs", "energyprof.runner.job",
              "energyprof.runner.engine", "energyprof.runtimes", "energyprof.power.registry", "energyprof.cli")


def test_the_torch_free_parts_and_every_page_import_neither_torch_nor_transformers() -> None:
    modules = [m for m in GRAPH.modules if m.startswith(("energyprof.spec", "energyprof.analysis"))]
    pages = sorted(str(p.relative_to(REPO)) for p in (REPO / "pages").glob("*.py"))
    code = "\n".join([
        "import ast, importlib, sys",
        f"for name in {sorted({*modules, *TORCH_FREE})!r}:",
        "    importlib.import_module(name)",
        f"for page in {[*pages, 'app.py']!r}:",  # every page's imports, without running the page
        "    for node in ast.parse(open(page).read()).body:",
        "        if isinstance(node, ast.Import):",
        "            [importlib.import_module(a.name) for a in node.names]",
        "        elif isinstance(node, ast.ImportFrom) and node.module != '__future__':",
        "            importlib.import_module(node.module)",
        "from energyprof.power import registry",
        "registry.all_statuses()",
        "print(','.join(sorted(m for m in ('torch', 'transformers') if m in sys.modules)))",
    ])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "", out.stdout
