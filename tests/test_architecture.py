"""Imports only point the allowed way (docs/architecture.md).

Walks every module's AST (so lazy imports inside functions count too) and checks each imported
top-level name against what its package may import. Third-party names not listed here fail the
test on purpose: a new dependency of a package is a decision to make in this table.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}

ALLOWED: dict[str, frozenset[str]] = {
    "config": frozenset(),
    "core": frozenset({"numpy"}),
    "export": frozenset({"core", "numpy", "onnx"}),
    "store": frozenset({"sqlalchemy", "alembic"}),
    "migrations": frozenset({"store", "sqlalchemy", "alembic"}),
    "worker": frozenset(
        {"config", "core", "store", "celery", "kombu", "sqlalchemy", "billiard", "threadpoolctl",
         "httpx", "numpy", "optuna"}  # optuna: TPE search, worker/sweep_search.py only
    ),
    "service": frozenset(
        {
            "config", "core", "store", "worker", "flask", "flask_openapi3",
            "pydantic", "werkzeug", "prometheus_client", "httpx", "rich", "gunicorn", "kombu",
            "celery", "sqlalchemy", "numpy", "redis", "jinja2", "markupsafe", "a2wsgi",
            "export",
        }
    ),
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def modules_of(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_design_allows(package: str) -> None:
    assert modules_of(package), f"{package}/ has no modules"
    allowed = ALLOWED[package] | STDLIB | {package}
    offences = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules_of(package)
        for name in sorted(imported_roots(path) - allowed)
    ]
    assert offences == []


def test_service_uses_worker_only_to_send_tasks() -> None:
    """The service may reach the worker package only for the Celery app that sends tasks."""
    offences = []
    for path in modules_of("service"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.split(".")[0] == "worker" and node.module not in {
                    "worker.celery_app",
                    "worker.tasks",
                    "worker.webhooks",  # the API checks a target with the delivery's own rule
                }:
                    offences.append(f"{path.relative_to(ROOT)}: from {node.module} import ...")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "worker" and alias.name not in {
                        "worker.celery_app",
                        "worker.tasks",
                        "worker.webhooks",
                    }:
                        offences.append(f"{path.relative_to(ROOT)}: import {alias.name}")
    assert offences == []


def test_checker_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import flask\n    from sqlalchemy import orm\n")
    assert imported_roots(bad) == {"flask", "sqlalchemy"}


def test_import_linter_contracts_hold() -> None:
    """The same rules, as import-linter reads them from pyproject.toml (indirect imports too)."""
    import shutil
    import subprocess

    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is part of the dev extra"
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def import_cycles(graph: Any) -> list[list[str]]:
    """Each import edge a -> b that b leads back from, as the cycle [a, b, ..., a]; sorted.

    Imports inside functions count (grimp reads every import statement): a lazy import that
    closes a cycle only hides the cycle from the interpreter, not from a reader.
    """
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append([importer, *back])
    return cycles


def test_the_project_has_no_import_cycles() -> None:
    import grimp

    graph = grimp.build_graph(*ALLOWED, cache_dir=None)
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    import grimp

    graph = grimp.ImportGraph()
    for importer, imported in (("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")):
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph) == [["a", "b", "c", "a"], ["b", "c", "a", "b"],
                                    ["c", "a", "b", "c"]]
