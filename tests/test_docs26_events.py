"""Every log event the code emits is documented, and every documented event is still emitted.

The events are read from the code with ``ast``: the first argument of each call of a structlog
logger's level method (``log.warning("x.y", ...)``, also through an alias such as
``tell = log.warning if ... else log.error``). Where that argument is not a string, the test
traces it: to the callers' arguments where it is a parameter, through local assignments,
loops, tuple unpacking, ``append``, module-level dicts and attributes assigned elsewhere. An
argument it cannot trace fails the test: an event hidden from it would go undocumented.

Documented means written in backticks in README.md or docs/*.md. The operator's reference is
docs/operations.md, section "Logs": the tables under "Every other event, by part" list each
event that the bullets above them do not tell (level, when, fields, what to do).
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = ("bot", "common", "gateway", "handlers", "launcher", "models", "sealed", "services")
CODE_FILES = ("scripts/protocol_vectors.py",)
LEVELS = frozenset({"debug", "info", "warning", "error", "exception", "critical", "msg"})
EVENT = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$")
BACKTICKED = re.compile(r"`([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)?)`")
# A backticked name with an event's namespace that is a file (`journal.db`), not an event.
FILE_SUFFIXES = frozenset({"db", "py", "js", "mjs", "json", "md", "toml", "log", "yml", "html"})
TABLE = 'docs/operations.md, section "Logs", the tables under "Every other event, by part"'


@dataclass
class Emitted:
    """Where an event is logged: at what levels, with which fields."""

    levels: set[str] = field(default_factory=set)
    places: set[str] = field(default_factory=set)
    fields: set[str] = field(default_factory=set)


@dataclass
class Module:
    """A parsed file of the code, with each node's parent (to find its function)."""

    path: str
    tree: ast.Module
    parents: dict[ast.AST, ast.AST]


def _modules() -> list[Module]:
    files = [p for root in CODE for p in sorted((ROOT / root).rglob("*.py"))]
    files += [ROOT / name for name in CODE_FILES]
    modules = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        modules.append(Module(str(path.relative_to(ROOT)), tree, parents))
    return modules


def _is_get_logger(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get_logger"
    )


def _loggers(module: Module) -> set[str]:
    """The module-level names bound to ``structlog.get_logger(...)``."""
    return {
        target.id
        for node in module.tree.body
        if isinstance(node, ast.Assign) and _is_get_logger(node.value)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def _is_level(node: ast.AST, loggers: set[str]) -> bool:
    """``log.info`` (a logger's level method, called or not)."""
    if not (isinstance(node, ast.Attribute) and node.attr in LEVELS):
        return False
    receiver = node.value
    return (isinstance(receiver, ast.Name) and receiver.id in loggers) or _is_get_logger(receiver)


def _enclosing(module: Module, node: ast.AST) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    while node in module.parents:
        node = module.parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return node
    return None


def _outermost(module: Module, node: ast.AST) -> ast.AST:
    """The outermost function around ``node`` (closures share its names), else the module."""
    found: ast.AST = module.tree
    while node in module.parents:
        node = module.parents[node]
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found = node
    return found


class Tracer:
    """Finds the strings an expression can hold, across the code's modules."""

    def __init__(self, modules: list[Module]) -> None:
        self.modules = modules
        self.untraced: list[str] = []

    def strings(  # noqa: PLR0911 -- one return a form of expression
        self, module: Module, expr: ast.AST, depth: int = 0
    ) -> set[str]:
        """The string values ``expr`` can take (its first item for a tuple)."""
        if depth > 8:  # a cycle of parameters passed around
            return set()
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.Tuple) and expr.elts:
            return self.strings(module, expr.elts[0], depth + 1)
        if isinstance(expr, ast.IfExp):
            return self.strings(module, expr.body, depth + 1) | self.strings(
                module, expr.orelse, depth + 1
            )
        if isinstance(expr, ast.Subscript) and isinstance(expr.value, ast.Name):
            return self._dict_values(module, expr.value.id, depth)
        if isinstance(expr, ast.Attribute):
            return self._attribute(expr.attr, depth)
        if isinstance(expr, ast.Name):
            return self._name(module, expr, depth)
        return self._untraced(module, expr)

    def _untraced(self, module: Module, expr: ast.AST) -> set[str]:
        self.untraced.append(f"{module.path}:{expr.lineno}: {ast.unparse(expr)}")  # type: ignore[attr-defined]
        return set()

    def _dict_values(self, module: Module, name: str, depth: int) -> set[str]:
        found: set[str] = set()
        for node in module.tree.body:
            if (
                isinstance(node, ast.Assign | ast.AnnAssign)
                and isinstance(node.value, ast.Dict)
                and any(
                    isinstance(t, ast.Name) and t.id == name
                    for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                )
            ):
                for value in node.value.values:
                    found |= self.strings(module, value, depth + 1)
        return found

    def _attribute(self, attr: str, depth: int) -> set[str]:
        """What any ``x.<attr> = ...`` in the code assigns."""
        found: set[str] = set()
        for module in self.modules:
            for node in ast.walk(module.tree):
                if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Attribute) and t.attr == attr for t in node.targets
                ):
                    found |= self.strings(module, node.value, depth + 1)
        return found

    def _name(self, module: Module, expr: ast.Name, depth: int) -> set[str]:
        scope = _outermost(module, expr)
        function = _enclosing(module, expr)
        if function is not None:
            names = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
            if expr.id in names or expr.id in [a.arg for a in function.args.kwonlyargs]:
                return self._arguments(function, names, expr.id, depth)
        found: set[str] = set()
        bound = False
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                targets = [
                    e for t in node.targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])
                ]
                if any(isinstance(t, ast.Name) and t.id == expr.id for t in targets):
                    bound = True
                    found |= self.strings(module, node.value, depth + 1)
            elif (
                isinstance(node, ast.For | ast.AsyncFor)
                and isinstance(node.target, ast.Name)
                and node.target.id == expr.id
            ):
                bound = True
                found |= self._items(module, node.iter, depth + 1)
        return found if bound else self._untraced(module, expr)

    def _items(self, module: Module, expr: ast.AST, depth: int) -> set[str]:
        """The strings a collection (a list filled by ``append``, a parameter) holds."""
        if isinstance(expr, ast.List | ast.Tuple | ast.Set):
            return {s for e in expr.elts for s in self.strings(module, e, depth + 1)}
        if not isinstance(expr, ast.Name):
            return self._untraced(module, expr)
        function = _enclosing(module, expr)
        if function is not None:
            names = [a.arg for a in (*function.args.posonlyargs, *function.args.args)]
            if expr.id in names:
                return self._arguments(function, names, expr.id, depth, items=True)
        found: set[str] = set()
        for node in ast.walk(_outermost(module, expr)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "append"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == expr.id
                and node.args
            ):
                found |= self.strings(module, node.args[0], depth + 1)
        return found

    def _arguments(
        self,
        function: ast.FunctionDef | ast.AsyncFunctionDef,
        names: list[str],
        name: str,
        depth: int,
        *,
        items: bool = False,
    ) -> set[str]:
        """What the callers of ``function`` pass for its parameter ``name``."""
        found: set[str] = set()
        called = False
        for module in self.modules:
            for node in ast.walk(module.tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                callee = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                if callee != function.name:
                    continue
                offset = 1 if isinstance(func, ast.Attribute) and names[:1] == ["self"] else 0
                passed = [k.value for k in node.keywords if k.arg == name]
                index = names.index(name) - offset if name in names else -1
                if not passed and 0 <= index < len(node.args):
                    passed = [node.args[index]]
                for arg in passed:
                    called = True
                    read = self._items if items else self.strings
                    found |= read(module, arg, depth + 1)
        if not called:
            self.untraced.append(f"{function.name}({name}): no caller passes it")
        return found


@functools.cache
def emitted() -> tuple[dict[str, Emitted], list[str]]:
    """Every event the code logs, and the log calls whose event could not be traced."""
    modules = _modules()
    tracer = Tracer(modules)
    events: dict[str, Emitted] = {}
    for module in modules:
        loggers = _loggers(module)
        aliases = {
            target.id
            for node in ast.walk(module.tree)
            if isinstance(node, ast.Assign)
            and any(_is_level(n, loggers) for n in ast.walk(node.value))
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Call):
                continue
            if _is_level(node.func, loggers):
                levels = {node.func.attr}  # type: ignore[attr-defined]
            elif isinstance(node.func, ast.Name) and node.func.id in aliases:
                levels = {"warning/error"}
            else:
                continue
            if not node.args:
                tracer.untraced.append(f"{module.path}:{node.lineno}: no event")
                continue
            for name in tracer.strings(module, node.args[0]):
                entry = events.setdefault(name, Emitted())
                entry.levels |= levels
                entry.places.add(f"{module.path}:{node.lineno}")
                entry.fields |= {k.arg for k in node.keywords if k.arg is not None}
    return events, tracer.untraced


def documented() -> set[str]:
    """The names written in backticks in README.md and docs/*.md."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {name for page in pages for name in BACKTICKED.findall(page.read_text("utf-8"))}


def test_every_event_is_traced() -> None:
    _, untraced = emitted()
    assert not untraced, (
        "log calls whose event name this test cannot trace to a string (pass the name as a"
        " literal, or teach tests/test_docs26_events.py's Tracer the form):\n" + "\n".join(untraced)
    )


def test_every_emitted_event_is_documented() -> None:
    events, _ = emitted()
    missing = sorted(set(events) - documented())
    rows = [
        f"| `{name}` | {'/'.join(sorted(events[name].levels))} | <when> |"
        f" {', '.join(f'`{f}`' for f in sorted(events[name].fields)) or '-'} | <what to do> |"
        f"   <- logged at {', '.join(sorted(events[name].places))}"
        for name in missing
    ]
    assert not missing, (
        f"{len(missing)} log event(s) in no doc. Add a row for each to {TABLE} (under the"
        " part that logs it; read the code for when and what to do), or describe it in the"
        " prose of that section:\n" + "\n".join(rows)
    )


def test_every_documented_event_is_emitted() -> None:
    events, _ = emitted()
    namespaces = {name.split(".")[0] for name in events if "." in name}
    stale = sorted(
        name
        for name in documented() - set(events)
        if "." in name
        and name.split(".")[0] in namespaces
        and name.split(".")[1] not in FILE_SUFFIXES
    )
    assert not stale, (
        "documented log events that no code logs any more: remove them (their rows in"
        f" {TABLE}, or their mention elsewhere in docs/ and README.md), or log them again:\n"
        + "\n".join(stale)
    )
