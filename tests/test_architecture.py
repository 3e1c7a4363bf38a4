"""The rooms import only whom ../shared/ARCHITECTURE.md lets them: checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROOMS = ("tillgate", "drivers", "loyalty", "protos", "offline", "central", "adapter")
#: room → the other rooms it may import
MAY_IMPORT = {
    "tillgate": set(ROOMS),
    "drivers": {"tillgate"},
    "loyalty": {"tillgate"},
    "protos": {"loyalty", "tillgate"},
    "offline": {"loyalty", "protos", "tillgate"},
    "central": {"loyalty", "protos", "tillgate"},
    "adapter": set(ROOMS),
}


def _parse(source: str) -> ast.Module:
    # CPython 3.11 keeps the AST constructor's recursion depth in state shared by all threads
    # (python/cpython#106905): a thread left by another test formatting a traceback (3.11's
    # caret anchors parse source) can make ast.parse fail spuriously. Parsing again is safe.
    for _ in range(4):
        try:
            return ast.parse(source)
        except SystemError:
            continue
    return ast.parse(source)


def imported_rooms(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(_parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(ROOMS)


@pytest.mark.parametrize("room", [room for room in ROOMS if MAY_IMPORT[room] != set(ROOMS)])
def test_a_room_imports_only_whom_it_may(room: str) -> None:
    trespasses = {
        str(path.relative_to(ROOT)): sorted(others)
        for path in sorted((ROOT / room).rglob("*.py"))
        if (others := imported_rooms(path) - MAY_IMPORT[room] - {room})
    }
    assert trespasses == {}
