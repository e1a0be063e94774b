"""The house's shape, held by a test: folders in pipeline order with no upward import and no
cycle, modules of one role (at most 400 lines), a thin CLI, one module per command, one reader of
the environment's endpoints, and a runtime protocol that fits on one screen."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from labreport.runtimes.base import Runtime

PACKAGE = Path(__file__).resolve().parent.parent / "labreport"

# Lowest first: a module may import from its own layer and the layers before it, never after.
LAYERS = (
    ("errors", "bundle"),
    ("host",),
    ("config", "rules", "record"),
    ("build",),
    ("runtimes",),
    ("inventory",),
    ("measure",),
    ("analysis",),
    ("report",),
    ("commands",),
    ("options",),
    ("cli", "__init__", "__main__"),
)
LAYER_OF = {name: index for index, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """The labreport modules path imports (at the top or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("labreport"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("labreport")}
    return found


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYER_OF[parts[1] if len(parts) > 1 else "__init__"]


def test_every_folder_and_module_has_a_layer() -> None:
    unplaced = {m.split(".")[1] for m in modules() if "." in m} - set(LAYER_OF)
    assert not unplaced, f"give these a place in LAYERS: {sorted(unplaced)}"


def test_no_upward_import() -> None:
    found = modules()
    upward = [
        f"{module} imports {target}"
        for module, path in found.items()
        for target in imports(path, set(found))
        if target != "labreport" and layer(target) > layer(module)
    ]
    assert upward == []


def test_no_import_cycle() -> None:
    found = modules()
    graph = {module: imports(path, set(found)) & set(found) for module, path in found.items()}
    graph = {module: targets - {"labreport", module} for module, targets in graph.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("cycle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_modules_keep_one_role() -> None:
    long = {m: n for m, p in modules().items() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
    assert len((PACKAGE / "cli.py").read_text().splitlines()) <= 200


def test_one_module_per_command() -> None:
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    commands = {
        decorator.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef)
        for decorator in node.decorator_list
        if isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr == "command"
        and isinstance(decorator.args[0], ast.Constant)
    }
    assert "measure" in commands and "render" in commands
    modules_for = {path.stem for path in (PACKAGE / "commands").glob("*.py")}
    missing = {c for c in commands if c.replace("-", "_") not in modules_for}
    assert missing == set()


def test_the_environment_names_endpoints_in_one_place() -> None:
    """Below the commands every step takes its engine and containerd as an argument."""
    readers = {m for m, p in modules().items() if "from_environment" in p.read_text()}
    assert readers == {"labreport.host.endpoints", "labreport.commands.common"}
    calls = (PACKAGE / "commands" / "common.py").read_text().count("from_environment()")
    assert calls == 1


def test_the_runtime_protocol_fits_on_one_screen() -> None:
    members = set(Runtime.__annotations__) | {
        name
        for name, value in vars(Runtime).items()
        if inspect.isfunction(value) and not name.startswith("__")
    }
    assert members == {"name", "spec", "available", "prepare", "run_once", "serve", "cleanup"}


def test_every_link_of_the_docs_resolves() -> None:
    """README.md and docs/: each relative link names a file that exists, and every docs page is
    linked from the README."""
    root = PACKAGE.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(root)}: {target}")
    assert broken == []
    readme = (root / "README.md").read_text()
    unlinked = [p.name for p in pages[1:] if f"(docs/{p.name})" not in readme]
    assert unlinked == []
    assert len(readme.splitlines()) <= 200
