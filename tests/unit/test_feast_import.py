"""Feast's import-time type checks are off in every package of ours that imports Feast
(`infra.feast_import`): each such package imports that module in its `__init__`, and a fresh
process importing one of them gets Feast's classes uninstrumented."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Our top-level packages, as import-linter's contracts name them.
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "root_packages"
]


def _imports_feast(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        if any(name.split(".")[0] == "feast" for name in names):
            return True
    return False


def _imports_switch(init: Path) -> bool:
    return any(
        isinstance(node, ast.Import) and any(a.name == "infra.feast_import" for a in node.names)
        for node in ast.parse(init.read_text()).body
    )


def test_every_package_that_imports_feast_turns_its_checks_off_first() -> None:
    users = {
        package
        for package in PACKAGES
        for module in (ROOT / package).rglob("*.py")
        if _imports_feast(module)
    }
    assert {"feature_repo", "feature_tables", "serving", "training"} <= users
    missing = sorted(p for p in users if not _imports_switch(ROOT / p / "__init__.py"))
    assert not missing, f"import infra.feast_import first in {missing}/__init__.py"


def test_feast_classes_are_not_instrumented_after_our_import() -> None:
    code = (
        "import training.examples, feast.feature_view as v, feast.data_source as d\n"
        "names = v.FeatureView.__init__.__code__.co_names\n"
        "names += d.DataSource.__init__.__code__.co_names\n"
        "print('typeguard' in names)\n"
    )
    checked = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert checked.stdout.strip() == "False"
