"""The layout shows the architecture (README "Layout"): checked on the imports themselves.

contract/ is what everything reads and imports nothing else of the project; the product
(contract, sources, precompute, backend, tamscope) never imports tests, benchmarks or the test
kit; and the helpers the project once wrote several times are defined once.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

from testkit import REPO

PRODUCT = ("contract", "sources", "precompute", "backend", "tamscope")
PACKAGES = (*PRODUCT, "bench", "testkit", "tests")


def python_files(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (REPO / pkg).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every import in the file, including imports inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_package_is_found():
    assert all((REPO / pkg / "__init__.py").is_file() for pkg in PACKAGES if pkg != "tests")
    assert len(python_files("contract")) >= 7


def test_contract_imports_nothing_else_of_the_project():
    offenders = {str(p.relative_to(REPO)): sorted(imported_packages(p) & (set(PACKAGES) - {"contract"}))
                 for p in python_files("contract")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_product_never_imports_tests_benchmarks_or_the_test_kit():
    offenders = {str(p.relative_to(REPO)): sorted(imported_packages(p) & {"tests", "bench", "testkit"})
                 for p in python_files(*PRODUCT)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_benchmarks_never_import_tests():
    offenders = [str(p.relative_to(REPO)) for p in python_files("bench", "testkit") if "tests" in imported_packages(p)]
    assert offenders == []


def test_helpers_once_written_several_times_are_defined_once():
    defined = defaultdict(list)
    for path in python_files(*PACKAGES):
        for node in ast.parse(path.read_text(), str(path)).body:
            names = [node.name] if isinstance(node, ast.FunctionDef | ast.ClassDef) else [
                t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            for name in names:
                defined[name].append(str(path.relative_to(REPO)))
    once = ("slugify", "free_port", "IMAGE_SUFFIXES", "FRONTEND", "CSP", "SiteError")
    assert {name: defined[name] for name in once if len(defined[name]) > 1} == {}
