"""Which top-level package may use which: tests/ holds tests and small test-only helpers that
nothing else imports, the harness programs live in testbed/, and the operator uses neither."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OUTSIDE_TESTS = ("operator", "testbed", "hack")
# A helper module of tests/ longer than this is a program, and belongs in testbed/.
HELPER_MAX_LINES = 200
MODULE_PATH = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+")


def python_files(top: str) -> list[Path]:
    return sorted(path for path in (REPO / top).rglob("*.py") if ".venv" not in path.parts)


def imported_modules(path: Path) -> Iterator[str]:
    """Every absolute import of a file, and every dotted module name it spells out in a string
    (the ``python -m`` targets it starts as processes)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_PATH.fullmatch(node.value)
        ):
            yield node.value


def is_module_of(package: str, name: str) -> bool:
    """``name`` is ``package`` or a module in it, and not a file name that starts like it (tests.yaml)."""
    if name != package and not name.startswith(package + "."):
        return False
    relative = Path(*name.split("."))
    return (REPO / relative).is_dir() or (REPO / relative).with_suffix(".py").is_file()


def users_of(package: str, tops: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(REPO)}: {name}"
        for top in tops
        for path in python_files(top)
        for name in imported_modules(path)
        if is_module_of(package, name)
    ]


def test_nothing_outside_tests_imports_or_runs_a_module_of_tests() -> None:
    assert users_of("tests", OUTSIDE_TESTS) == []


def test_the_operator_never_imports_the_testbed() -> None:
    assert users_of("testbed", ("operator",)) == []


def test_the_makefile_runs_no_program_from_tests() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.findall(r"-m tests\.\S+|\btests/\S+\.py\b", makefile) == []


@pytest.mark.parametrize(
    "path",
    [
        path
        for path in python_files("tests")
        if not path.name.startswith("test_") and path.name not in ("conftest.py", "__init__.py")
    ],
    ids=lambda path: str(path.relative_to(REPO / "tests")),
)
def test_every_other_module_of_tests_is_a_small_helper_not_a_program(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= HELPER_MAX_LINES, f"{path.name} is a program: move it to testbed/"
    assert '__name__ == "__main__"' not in source, f"{path.name} runs as a program: move it to testbed/"
