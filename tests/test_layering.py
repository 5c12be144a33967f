"""Imports go one way: the lower layers never import aiogram (or the layers above them)."""

from __future__ import annotations

import ast

import pytest

from tests.harness import REPO

FORBIDDEN = {
    "sealed": {"aiogram", "bot", "handlers", "services", "models", "gateway", "sqlite_utils"},
    "models": {"aiogram", "bot", "handlers", "services", "sealed", "gateway"},
    "services": {"aiogram", "bot", "handlers", "gateway", "sqlite_utils"},
    "gateway": {"aiogram", "bot", "handlers", "services", "models", "sqlite_utils"},
    # The playground emulates Telegram: it must not lean on the bot it serves.
    "playground": {"aiogram", "bot", "handlers", "services", "models", "sealed", "gateway"},
    # The launcher only starts processes: it imports none of what it starts.
    "launcher": {
        "aiogram",
        "bot",
        "handlers",
        "services",
        "models",
        "sealed",
        "gateway",
        "playground",
    },
}


def imported_roots(source: str) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_only_what_its_layer_may(package: str) -> None:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"{package} has no modules"
    for path in files:
        bad = imported_roots(path.read_text(encoding="utf-8")) & FORBIDDEN[package]
        assert not bad, f"{path.relative_to(REPO)} imports {sorted(bad)}"


def test_the_check_catches_a_forbidden_import() -> None:
    assert imported_roots("from aiogram import Bot\nimport sqlite_utils.db") == {
        "aiogram",
        "sqlite_utils",
    }
