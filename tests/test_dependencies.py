"""Every library the ``palier`` package imports is one ``pip install palier`` brings (not only the dev extras).

``make demo`` installs the package without its dev extras: a module imported by ``src/palier`` but declared
only under ``dev`` would pass the whole suite and break the demo for a new user.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    found = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert found, requirement
    return re.sub(r"[-_.]+", "-", found.group(0)).lower()


def _imported_top_levels() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "src" / "palier").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"palier", "__future__"}


def test_every_import_of_the_package_is_a_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    dev_only = {_name(r) for r in project["optional-dependencies"]["dev"]} - runtime
    providers = packages_distributions()
    missing = {}
    for module in sorted(_imported_top_levels()):
        distributions = {_name(d) for d in providers.get(module, [])}
        assert distributions, f"{module} is imported by src/palier but no installed distribution provides it"
        if not distributions & runtime:
            missing[module] = sorted(distributions)
    # a library that comes with a declared one (starlette with fastapi, itsdangerous…) is fine, a dev one is not
    assert {m: d for m, d in missing.items() if set(d) & dev_only} == {}, (
        "imported by src/palier but declared only in the dev extras of pyproject.toml"
    )
