"""Imports go one way: handlers → services → models, sealed; gateway → sealed; bot on top.

``bot`` is the composition root: nothing imports it, and only ``bot/app.py`` imports
``handlers``. Inside ``handlers`` a router imports only the shared leaf modules (callback data,
reply pieces, the failures' texts, the texts middleware, the sinks' protocols), never another
router; a feature split into a package (``handlers/groups/``) imports its own modules too.
``common`` (settings, logging, texts, the container entry point) sits below everything and
imports none of Veil.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pathlib import Path

from tests.harness import REPO

DEV_ONLY = {"playground", "launcher", "tests", "bench", "scripts"}
PRODUCT = {"bot", "handlers", "services", "models", "sealed", "gateway", "common"}

FORBIDDEN = {
    "common": {"aiogram", "sqlite_utils"} | PRODUCT - {"common"} | DEV_ONLY,
    "bot": {"gateway"} | DEV_ONLY,
    "handlers": {"bot", "gateway", "sqlite_utils", "sqlite3"} | DEV_ONLY,
    "sealed": {"aiogram", "bot", "handlers", "services", "models", "gateway", "sqlite_utils"}
    | DEV_ONLY,
    "models": {"aiogram", "bot", "handlers", "services", "sealed", "gateway"} | DEV_ONLY,
    "services": {"aiogram", "bot", "handlers", "gateway", "sqlite_utils", "sqlite3"} | DEV_ONLY,
    "gateway": {"aiogram", "bot", "handlers", "services", "models", "sqlite_utils"} | DEV_ONLY,
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


def imported_modules(source: str) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def imported_roots(source: str) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(source)}


HANDLER_LEAVES = {
    "handlers.middleware",
    "handlers.callbacks",
    "handlers.commands",
    "handlers.documents",
    "handlers.failures",
    "handlers.reading",
    "handlers.replies",
    "handlers.sinks",
}


def product_modules() -> list[Path]:
    return sorted(path for package in PRODUCT for path in (REPO / package).rglob("*.py"))


def test_nothing_imports_the_composition_root_and_only_its_wiring_imports_handlers() -> None:
    for path in product_modules():
        where = path.relative_to(REPO)
        roots = imported_roots(path.read_text(encoding="utf-8"))
        if where.parts[0] != "bot":
            assert "bot" not in roots, f"{where} imports bot"
        if where.parts[0] == "bot" and where.name != "app.py":
            assert "handlers" not in roots, f"{where} imports handlers"


def own_package(path: Path) -> set[str]:
    """The feature package ``path`` is a module of (``handlers.groups.``), if it is in one."""
    parts = path.relative_to(REPO).parts
    return {".".join(parts[:-1]) + "."} if len(parts) > 2 else set()  # deeper than handlers/x.py


def test_a_router_imports_only_the_shared_leaf_modules_of_handlers() -> None:
    for path in sorted((REPO / "handlers").rglob("*.py")):
        names = imported_modules(path.read_text(encoding="utf-8"))
        inside = {name for name in names if name.startswith("handlers.")}
        leaves = HANDLER_LEAVES | own_package(path)
        allowed = {name for name in inside if any(name.startswith(leaf) for leaf in leaves)}
        assert inside <= allowed, f"{path.relative_to(REPO)} imports {sorted(inside - allowed)}"


def test_a_feature_package_may_not_import_another_router() -> None:
    """Its own modules, yes; another feature's (``handlers.chat``), no: the check still says so."""
    groups = REPO / "handlers" / "groups" / "answer.py"
    assert own_package(groups) == {"handlers.groups."}
    assert own_package(REPO / "handlers" / "chat.py") == set()
    leaves = HANDLER_LEAVES | own_package(groups)
    assert not any("handlers.chat".startswith(leaf) for leaf in leaves)
    assert not any("handlers.groupsx".startswith(leaf) for leaf in leaves)


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


def test_one_module_cancels_subscriptions_and_services_read_no_telegram_refusal() -> None:
    """The cancellation of a refunded plan is one implementation (``services.shop_cancel``).

    The admin's /refund and ``reconcile --fix`` each had their own loop over the charges,
    reading ``CHARGE_ID_INVALID`` two ways; Telegram's side is now ``bot.subscriptions`` alone.
    """
    callers = sorted(
        str(path.relative_to(REPO))
        for path in product_modules()
        if "edit_user_star_subscription" in path.read_text(encoding="utf-8")
    )
    assert callers == ["bot/subscriptions.py"]
    for path in product_modules():
        if path.parts[len(REPO.parts)] in {"handlers", "services"}:
            assert '"CHARGE_ID_INVALID"' not in path.read_text(encoding="utf-8"), path
