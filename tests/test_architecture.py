"""The layers of ARCHITECTURE.md, checked on the package's source: a forbidden import fails here.

Imports are read with ``ast`` (module level, inside functions and under TYPE_CHECKING alike), so a
lazy import cannot hide a wrong arrow; cycles are checked on what runs at import time.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "skillmaker"

# Lowest first. A module may import its own layer and the layers below it, never one above.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "support",
        (
            "skillmaker",
            "skillmaker.errors",
            "skillmaker.fileio",
            "skillmaker.locks",
            "skillmaker.processes",
            "skillmaker.progress",
            "skillmaker.resources",
            "skillmaker.retry",
        ),
    ),
    ("config", ("skillmaker.config",)),
    ("domain", ("skillmaker.domain",)),
    ("adapters", ("skillmaker.adapters",)),
    (
        "records",
        ("skillmaker.records", "skillmaker.context", "skillmaker.registry", "skillmaker.runs"),
    ),
    (
        "stages",
        (
            "skillmaker.version",
            "skillmaker.build",
            "skillmaker.data",
            "skillmaker.training",
            "skillmaker.evaluation",
            "skillmaker.cascade",
            "skillmaker.report",
            "skillmaker.gate",
            "skillmaker.deploy",
            "skillmaker.notify",
            "skillmaker.serving",
            "skillmaker.scaffold",
        ),
    ),
    ("pipeline", ("skillmaker.pipeline",)),
    ("commands", ("skillmaker.commands", "skillmaker.cli", "skillmaker.__main__")),
)

# What the pure domain may never touch: I/O, processes, the network, frameworks, services.
DOMAIN_FORBIDDEN = (
    "boto3",
    "botocore",
    "docker",
    "keras",
    "tensorflow",
    "slack_sdk",
    "smtplib",
    "subprocess",
    "socket",
    "httpx",
    "requests",
    "urllib.request",
    "shutil",
    "tempfile",
    "filelock",
    "skillmaker.config.load",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


MODULES = _modules()


def _imports(path: Path, *, at_import_time: bool) -> Iterator[str]:
    """Give the modules a file imports (only those run when it is imported, if asked)."""

    def walk(node: ast.AST, deferred: bool) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            later = deferred or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            later = later or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            )
            if not (at_import_time and later):
                if isinstance(child, ast.Import):
                    yield from (alias.name for alias in child.names)
                elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                    yield child.module
                    for alias in child.names:
                        if f"{child.module}.{alias.name}" in MODULES:
                            yield f"{child.module}.{alias.name}"
            yield from walk(child, later)

    yield from walk(ast.parse(path.read_text(encoding="utf-8")), False)


def _layer(module: str) -> int:
    best, rank = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            exact = module == prefix
            if (exact or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    return rank


def test_every_module_has_a_layer() -> None:
    assert [m for m in MODULES if _layer(m) < 0] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(module: str) -> None:
    own = _layer(module)
    wrong = sorted(
        f"{name} ({LAYERS[_layer(name)][0]})"
        for name in set(_imports(MODULES[module], at_import_time=False))
        if name.startswith("skillmaker") and name in MODULES and _layer(name) > own
    )
    assert wrong == [], f"{module} ({LAYERS[own][0]}) imports from above: {wrong}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("skillmaker.domain")))
def test_the_domain_does_no_io(module: str) -> None:
    wrong = sorted(
        name
        for name in set(_imports(MODULES[module], at_import_time=False))
        if any(name == bad or name.startswith(bad + ".") for bad in DOMAIN_FORBIDDEN)
    )
    assert wrong == [], f"{module} imports I/O: {wrong}"


def test_adapters_import_no_stage() -> None:
    stages = LAYERS[5][1]
    wrong = sorted(
        (module, name)
        for module, path in MODULES.items()
        if module.startswith("skillmaker.adapters")
        for name in _imports(path, at_import_time=False)
        if any(name == s or name.startswith(s + ".") for s in stages)
    )
    assert wrong == []


def test_the_package_has_no_import_cycle() -> None:
    graph = {
        module: {
            name
            for name in _imports(path, at_import_time=True)
            if name in MODULES and name != module
        }
        for module, path in MODULES.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for name in sorted(graph[module]):
            if state.get(name) == 1:
                cycles.append([*path[path.index(name) :], name])
            elif name not in state:
                visit(name, [*path, name])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_module_is_over_400_lines() -> None:
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
