"""Imports run one way: a module imports only from its own layer or the layers below it."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "agentkd"

# Bottom to top. The package face (agentkd/__init__.py) re-exports everything lazily and is not a layer.
LAYERS = [
    ["agentkd.version", "agentkd.errors", "agentkd.specs", "agentkd.sampling", "agentkd.records", "agentkd.codeact",
     "agentkd.jobs", "agentkd.tool_calls"],
    ["agentkd.models", "agentkd.tools", "agentkd.sandbox"],
    ["agentkd.env", "agentkd.store.persist", "agentkd.store.errors", "agentkd.store.faiss_index",
     "agentkd.store.vectors", "agentkd.store.keys", "agentkd.store.records", "agentkd.store.embedders",
     "agentkd.store.demo_store", "agentkd.store"],
    ["agentkd.run"],
    ["agentkd.store.build", "agentkd.policies"],
    ["agentkd.agent"],
    ["agentkd.scale"],
    ["agentkd.collect"],
    ["agentkd.evaluate", "agentkd.train", "agentkd.calibrate"],
    ["agentkd.agent.cascaded", "agentkd.pipeline", "agentkd.rounds", "agentkd.report", "agentkd.bench",
     "agentkd.gateway"],
    ["agentkd.cli"],
]


def layer_of(module: str) -> int:
    best, level = "", None
    for index, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > len(best):
                best, level = name, index
    assert level is not None, f"{module} is in no layer: add it to LAYERS"
    return level


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every agentkd module a file imports, at any depth (function-level and TYPE_CHECKING imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            found.update(n for n in names if n.startswith("agentkd"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("agentkd"))
    return found


def resolve(target: str, known: set[str]) -> str | None:
    """The module an import names (`from agentkd.x import y` may import the module x or the module x.y)."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def test_no_module_imports_from_a_layer_above_it():
    files = [p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py"]
    known = {module_name(p) for p in files} | {"agentkd"}
    upward = []
    for path in files:
        here = module_name(path)
        for target in imports(path):
            module = resolve(target, known)
            if module in (None, "agentkd", here) or module.startswith(here + "."):
                continue
            if layer_of(module) > layer_of(here):
                upward.append(f"{here} (layer {layer_of(here)}) -> {module} (layer {layer_of(module)})")
    assert not upward, "imports that run uphill:\n" + "\n".join(sorted(upward))


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The agentkd modules a file imports: `from x import y` imports the module x.y when there is one, else x."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("agentkd"):
            for alias in node.names:
                found.add(resolve(f"{node.module}.{alias.name}", known))
        elif isinstance(node, ast.Import):
            found.update(resolve(a.name, known) for a in node.names if a.name.startswith("agentkd"))
    return {m for m in found if m is not None}


def test_no_import_cycles():
    files = [p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py"]
    known = {module_name(p) for p in files} | {"agentkd"}
    graph = {module_name(p): imported_modules(p, known) - {"agentkd", module_name(p)} for p in files}
    cycles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                cycles.append(" -> ".join([*path[path.index(target):], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_module_imports_the_package_face():
    offenders = [module_name(p) for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py"
                 and re.search(r"^\s*from agentkd import ", p.read_text(), re.MULTILINE)]
    assert not offenders, f"import from the defining module instead: {offenders}"


def test_the_scripts_under_tools_import_the_library_not_the_command_line():
    tools = sorted((PACKAGE.parent / "benchmarks").glob("*.py"))
    assert tools
    offenders = [f"{p.name} imports {name}" for p in tools for name in sorted(imports(p))
                 if name == "agentkd.cli" or name.startswith("agentkd.cli.")]
    assert not offenders, "benchmarks/ are thin benchmark mains over the library:\n" + "\n".join(offenders)


def test_only_the_command_line_imports_the_command_line():
    files = [p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py"]
    offenders = [f"{module_name(p)} imports {name}" for p in files if not module_name(p).startswith("agentkd.cli")
                 for name in sorted(imports(p)) if name == "agentkd.cli" or name.startswith("agentkd.cli.")]
    assert not offenders, "\n".join(offenders)
