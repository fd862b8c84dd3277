"""The package's layering, enforced: each subpackage imports only the ones below it.

api -> rollout -> children, probes -> control, with kube (the generic Kubernetes layer)
beside api and knowing nothing of ModelDeployments; the plugin (cli) sees only api; the
fetcher (its own image) imports nothing else of modeldeploy. The decision layers (api,
rollout, children) are pure: they import no socket, HTTP or threading library.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "operator" / "modeldeploy"
ALLOWED: dict[str, set[str]] = {
    "api": set(),
    "kube": set(),
    "rollout": {"api"},
    "children": {"api", "rollout"},
    "probes": {"api", "rollout"},
    "control": {"api", "kube", "rollout", "children", "probes"},
    "cli": {"api"},
    "fetcher": {"api"},  # standard-library modules of api only
}
PURE_LAYERS = ("api", "rollout", "children")
# What a pure layer may not import: anything that talks to a network or runs threads.
IMPURE_MODULES = frozenset(
    {
        "socket",
        "ssl",
        "http",
        "urllib",
        "urllib3",
        "requests",
        "httpx",
        "aiohttp",
        "grpc",
        "threading",
        "concurrent",
        "asyncio",
        "subprocess",
        "kopf",
        "kubernetes",
        "time",
    }
)


def imported_top_level(path: Path) -> set[str]:
    """The top-level modules a module imports from outside modeldeploy (absolute imports)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found - {"modeldeploy"}


def imported_subpackages(path: Path) -> set[str]:
    """The modeldeploy subpackages a module imports, relative imports resolved."""
    module_parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package_parts = module_parts[:-1]  # __init__ too: its package is its folder
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[tuple[str, ...]] = []
        if isinstance(node, ast.Import):
            targets = [tuple(alias.name.split(".")) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base: tuple[str, ...] = tuple((node.module or "").split(".")) if node.module else ()
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1] + base
            targets = [(*base, alias.name) for alias in node.names] if len(base) < 2 else [base]
        for target in targets:
            if target[0] == "modeldeploy" and len(target) > 1:
                found.add(target[1])
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_layer() -> None:
    top_level = {p.name for p in PACKAGE.glob("*.py")}
    assert top_level == {"__init__.py"}, (
        f"modules outside a subpackage: {sorted(top_level - {'__init__.py'})}"
    )
    assert {p.parts[len(PACKAGE.parts)] for p in modules() if p.parent != PACKAGE} == set(ALLOWED)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_only_lower_layers(path: Path) -> None:
    if path.parent == PACKAGE:
        return
    layer = path.relative_to(PACKAGE).parts[0]
    foreign = imported_subpackages(path) - {layer} - ALLOWED[layer]
    assert not foreign, f"{path.relative_to(PACKAGE)} ({layer}) imports {sorted(foreign)}"


@pytest.mark.parametrize(
    "path",
    [p for p in modules() if p.relative_to(PACKAGE).parts[0] in PURE_LAYERS],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_decision_layers_do_no_io(path: Path) -> None:
    impure = imported_top_level(path) & IMPURE_MODULES
    assert not impure, f"{path.relative_to(PACKAGE)} is in a pure layer but imports {sorted(impure)}"


def test_the_checker_sees_relative_and_absolute_imports(tmp_path: Path) -> None:
    """Guards the guard: a checker that saw no import would pass every module."""
    assert "control" in imported_subpackages(PACKAGE / "control" / "handlers.py")
    assert {"api", "rollout", "children", "kube", "probes"} <= imported_subpackages(
        PACKAGE / "control" / "reconcile.py"
    )
    assert imported_subpackages(PACKAGE / "children" / "desired.py") == {"api", "children", "rollout"}
    assert {"http", "socket"} <= imported_top_level(PACKAGE / "probes" / "bounded_http.py")


def test_every_subpackage_says_what_it_owns_and_may_import() -> None:
    for layer in ALLOWED:
        doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
        assert doc, f"{layer}/__init__.py has no docstring"
        assert "import" in doc.lower(), f"{layer}/__init__.py does not say what it may import"


# The modules of api the fetcher may import: standard library only, like the fetcher itself.
FETCHER_API_MODULES = frozenset({"api.redaction", "api.fetch_protocol"})


def api_modules_imported(path: Path) -> set[str]:
    """The ``api`` modules a fetcher module imports, as ``api.<module>``, in every spelling:
    ``from ..api.x import y``, ``from ..api import x``, ``from modeldeploy.api.x import y``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = (node.module or "").removeprefix("modeldeploy.")
        if module == "api":
            found |= {f"api.{alias.name}" for alias in node.names}
        elif module.startswith("api."):
            found.add(module)
        elif not module and any(alias.name == "api" for alias in node.names):
            found.add("api")  # the whole layer: ``from .. import api``
    return found


def test_the_fetcher_takes_only_standard_library_modules_from_api() -> None:
    """Its image installs the package without dependencies: no pydantic, so no api.spec."""
    for path in (PACKAGE / "fetcher").glob("*.py"):
        foreign = api_modules_imported(path) - FETCHER_API_MODULES
        assert not foreign, f"{path.name} imports {sorted(foreign)}"


@pytest.mark.parametrize("module", sorted(FETCHER_API_MODULES))
def test_the_api_modules_the_fetcher_takes_import_only_the_standard_library(module: str) -> None:
    path = PACKAGE / (module.replace(".", "/") + ".py")
    outside = imported_top_level(path) - set(sys.stdlib_module_names)
    assert not outside, f"{module} imports {sorted(outside)}"
    assert api_modules_imported_by_api(path) <= FETCHER_API_MODULES, module


def api_modules_imported_by_api(path: Path) -> set[str]:
    """The sibling ``api`` modules an api module imports (``from .x import``), as ``api.x``."""
    return {
        f"api.{node.module}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
    }


def test_the_fetcher_rule_sees_every_import_form() -> None:
    """Guards the guard: each spelling of an api import counts."""
    assert api_modules_imported(PACKAGE / "fetcher" / "__main__.py") >= {
        "api.fetch_protocol",
        "api.redaction",
    }
    assert "api.fetch_protocol" in api_modules_imported(PACKAGE / "fetcher" / "limits.py")
