"""Structured logging for Veil's processes: one JSON object a line on stderr.

Log events name what happened and carry ids, counts and durations; never message text,
keys or tokens.

Exceptions are where data slips in: a pydantic ``ValidationError`` quotes the input it refused
(a Telegram ``Message`` with its text), aiogram's ``ClientDecodeError`` the whole reply, aiohttp's
errors the URL (the Bot API's carries the bot token), a ``ValueError`` or ``KeyError`` the value
it was raised with, and asyncio's "Task exception was never retrieved" the task's repr with its
exception's. So no exception is rendered with ``str()``: ``describe`` says what it is (its class,
plus what is known to be safe: the Bot API method, a validation error's fields and kinds, a JSON
error's position, an errno), and ``render_exception`` gives the traceback (files, lines and
code; no locals) with each exception of the chain described so. Only Veil's own exceptions keep
their message (we write those, with ids and counts), unless their class sets
``log_message = False`` (one that carries the model server's words). The same rendering serves
structlog events (``exc_info``, or an exception passed as a field) and the stdlib loggers
(aiogram, aiohttp, asyncio), whose exception arguments are described likewise; asyncio's
messages keep their first line, up to the first repr (of a callback's arguments, a task).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import threading
import traceback
import warnings
from typing import TYPE_CHECKING, Any, TextIO

import structlog
from pydantic import ValidationError

from common.firstlines import lost_line, write_event, write_warning

if TYPE_CHECKING:
    from types import TracebackType

    from structlog.typing import EventDict, WrappedLogger

# The packages whose exceptions' messages we write ourselves (ids, counts, field names); not
# the playground's, which plays Telegram and quotes what it was sent as Telegram does.
_OWN_PACKAGES = frozenset(
    {"bot", "common", "gateway", "handlers", "launcher", "models", "sealed", "services"}
)
# A Bot API URL's token: ``.../bot<token>/<method>`` (and ``/file/bot<token>/...``).
_TOKEN_IN_URL = re.compile(r"/bot[^/\s'\"]+")
# A URL's user and password (``scheme://user:password@host``), as a proxy's Basic auth: up to
# the authority's last ``@``, as a password may hold a raw one.
_CREDENTIALS_IN_URL = re.compile(r"(?<=//)[^/?#\s]*@")
_REPR_START = re.compile(r"[(<\[{'\"]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")
_MOST_VALIDATION_ERRORS = 5
_MOST_CHAINED = 10
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def without_token(text: str) -> str:
    """``text`` with the token of any Bot API URL in it (``/bot<token>/…``) cut out."""
    return _TOKEN_IN_URL.sub("/bot<token>", text)


def without_credentials(url: str) -> str:
    """``url`` without the user and password it may carry (``scheme://user:password@host``)."""
    return _CREDENTIALS_IN_URL.sub("", url, count=1)


def describe(exc: BaseException) -> str:
    """What ``exc`` is, with no data from its message: its class and what is safe to say."""
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__.partition(".")[0] in _OWN_PACKAGES:
        if getattr(exc, "log_message", True):
            return f"{name}: {exc}" if str(exc) else name
        return f"{name} (message withheld)"
    detail = _safe_detail(exc)
    if detail is not None:
        return f"{name}: {detail}" if detail else name
    return f"{name} (message withheld)" if _has_message(exc) else name


def _safe_detail(exc: BaseException) -> str | None:  # noqa: PLR0911 -- one case a kind
    """The part of a known kind's message that carries no data; None for an unknown kind."""
    if _is(exc, "aiogram.exceptions.TelegramAPIError"):
        method = getattr(getattr(exc, "method", None), "__api_method__", "?")
        if _is(exc, "aiogram.exceptions.TelegramNetworkError"):
            return f"{method}: {without_token(str(getattr(exc, 'message', '')))}"
        return f"{method} (description withheld)"
    if _is(exc, "aiogram.exceptions.ClientDecodeError"):
        return str(getattr(exc, "message", ""))  # aiogram's words; not the reply, not the cause
    if isinstance(exc, ValidationError):
        return _validation_detail(exc)
    if isinstance(exc, UnicodeError) and isinstance(exc, UnicodeDecodeError | UnicodeEncodeError):
        return f"{exc.encoding} at {exc.start}: {exc.reason}"
    if type(exc).__name__ == "JSONDecodeError" and hasattr(exc, "lineno"):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"  # type: ignore[attr-defined]
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"[Errno {exc.errno}] {exc.strerror}"
    if isinstance(exc, TimeoutError | StopIteration | StopAsyncIteration) or not _has_message(exc):
        return ""
    return None


def _validation_detail(exc: ValidationError) -> str:
    """``N errors for Model: field.path kind; ...``: where and what, never the input."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(
            str(part) if isinstance(part, int) or _IDENTIFIER.fullmatch(part) else "…"
            for part in error["loc"]
        )
        parts.append(f"{where or '(root)'} {error['type']}")
        if len(parts) == _MOST_VALIDATION_ERRORS:
            break
    count = exc.error_count()
    return f"{count} error{'s' if count != 1 else ''} for {exc.title}: {'; '.join(parts)}"


def _is(exc: BaseException, qualified: str) -> bool:
    """Whether ``exc`` is an instance of the class named ``qualified`` (module.name).

    By name: ``common`` does not import aiogram (the gateway runs without it).
    """
    return any(f"{kind.__module__}.{kind.__qualname__}" == qualified for kind in type(exc).__mro__)


def _has_message(exc: BaseException) -> bool:
    try:
        return bool(exc.args) and bool(str(exc))
    except Exception:  # noqa: BLE001 -- a broken __str__ is no message we can show
        return True


def render_exception(exc: BaseException) -> str:
    """The traceback of ``exc`` and its chain as Python prints it, each exception ``describe``d.

    Frames keep their file, line, function and code line; exception notes are left out.
    """
    chain: list[tuple[BaseException, str | None]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    link: str | None = None
    while current is not None and id(current) not in seen and len(chain) < _MOST_CHAINED:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    lines: list[str] = []
    for error, why in reversed(chain):
        lines.extend(_one(error, error.__traceback__))
        if why is not None:
            lines.append(why)
    return "".join(lines).rstrip("\n")


def _one(exc: BaseException, tb: TracebackType | None) -> list[str]:
    lines = []
    if tb is not None:
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_list(traceback.extract_tb(tb)))
    lines.append(describe(exc) + "\n")
    if isinstance(exc, BaseExceptionGroup):
        for number, inner in enumerate(exc.exceptions[:_MOST_CHAINED], 1):
            body = render_exception(inner).replace("\n", "\n  | ")
            lines.append(f"+---- {number} ----\n  | {body}\n")
    return lines


def _format_exc_info(exc_info: Any) -> str:  # noqa: ANN401 -- structlog's ExcInfo tuple
    return render_exception(exc_info[1])


def describe_exception_fields(
    _logger: WrappedLogger, _name: str, event_dict: EventDict
) -> EventDict:
    """A structlog processor: an exception passed as a field is logged as ``describe`` says."""
    for key, value in event_dict.items():
        if isinstance(value, BaseException) and key != "exc_info":
            event_dict[key] = describe(value)
    return event_dict


def _message(record: logging.LogRecord) -> str:
    """The record's message; where it does not format, its template without the arguments.

    A library's ``%`` template with arguments that do not fit it (or a message whose ``str``
    fails) made ``getMessage`` raise: logging then lost the line and wrote its own report, the
    arguments quoted, in plain text (or, from a filter, raised to the caller).
    """
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 -- any failure: the line is kept, without its data
        if isinstance(record.msg, str):
            return record.msg
        return f"{type(record.msg).__qualname__} (message withheld)"


class SafeRecords(logging.Filter):
    """Describes the exceptions among a stdlib record's arguments; asyncio's first line only."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite ``record`` in place; never drops it."""
        if isinstance(record.msg, BaseException):
            record.msg = describe(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                describe(arg) if isinstance(arg, BaseException) else arg for arg in record.args
            )
        elif isinstance(record.args, dict):
            record.args = {
                key: describe(arg) if isinstance(arg, BaseException) else arg
                for key, arg in record.args.items()
            }
        if record.name == "asyncio" or record.name.startswith("asyncio."):
            # "Exception in callback f(<args' reprs>)\nhandle: <Handle ...>": up to the reprs.
            first = _message(record).partition("\n")[0]
            record.msg = _REPR_START.split(first, maxsplit=1)[0].rstrip()
            record.args = ()
        return True


class SafeFormatter(logging.Formatter):
    """A stdlib record (aiogram's, aiohttp's, asyncio's) as a JSON line, as structlog writes.

    ``event`` (the message), ``level``, ``logger``, ``timestamp`` (ISO, UTC) and, with a
    traceback, ``exception`` rendered by ``render_exception``: an operator's log pipeline reads
    every line of the bot and the gateway as JSON.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The line, its traceback rendered here even if another handler rendered it first."""
        record.exc_text = None  # logging caches the first handler's rendering, messages and all
        when = dt.datetime.fromtimestamp(record.created, dt.UTC)
        line: dict[str, str] = {
            "event": _message(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "timestamp": when.isoformat().replace("+00:00", "Z"),
        }
        if record.exc_info and record.exc_info[1] is not None:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line)

    def formatException(self, ei: Any) -> str:  # noqa: ANN401, N802 -- logging's names
        """The record's traceback, every exception described (no message data)."""
        return render_exception(ei[1]) if ei and ei[1] is not None else ""


def _log_crash(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """``sys.excepthook``: an exception that ends the process, logged as every other one."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    structlog.get_logger("veil").critical(
        "process.crashed", error=kind.__qualname__, exc_info=(kind, exc, tb)
    )


def _log_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """``sys.unraisablehook``: an exception raised where nobody can catch it, logged.

    One in a finalizer (an object's ``__del__``, a generator closed by the collector), say.
    Python would print its message and the repr of the object it was raised in.
    """
    exc = unraisable.exc_value
    kind = unraisable.exc_type
    exc_info = (kind, exc, unraisable.exc_traceback) if exc is not None else None
    structlog.get_logger("veil").error(
        "process.unraisable", error=kind.__qualname__, exc_info=exc_info
    )


def _log_thread_crash(args: threading.ExceptHookArgs) -> None:
    """``threading.excepthook``: an exception that ends a thread, logged as every other one."""
    if issubclass(args.exc_type, SystemExit):
        return  # a thread's quiet end, as Python's own hook treats it
    exc = args.exc_value
    exc_info = (args.exc_type, exc, args.exc_traceback) if exc is not None else None
    structlog.get_logger("veil").error(
        "thread.crashed",
        error=args.exc_type.__qualname__,
        thread=args.thread.name if args.thread is not None else None,
        exc_info=exc_info,
    )


def _log_warning(  # noqa: PLR0913, PLR0917 -- warnings.showwarning's signature
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning``: a Python warning as one log line (``python.warning``).

    Its kind and where it was raised, never its text or source line: a library's warning may
    quote what it was given (a user's text, a URL with its token). Before ``configure_logging``
    (``capture_early``) the line is written here, as structlog would write it.
    """
    del message, file, line
    fields = {"category": category.__qualname__, "file": filename, "line": lineno}
    if structlog.is_configured():
        structlog.get_logger("veil").warning("python.warning", **fields)
        return
    write_warning(category, filename, lineno)


class _StderrLogger(structlog.PrintLogger):
    """structlog's printer to stderr, whose lines stderr will not take are dropped (``lost_line``).

    ``print`` raised ``BrokenPipeError`` into the caller once the launcher reading stderr was
    gone: in a stop, the line before delivering the answers ended the bot instead.
    """

    def msg(self, message: str) -> None:
        """Print ``message``; a write that fails loses the line, not the caller's work."""
        try:
            super().msg(message)
        except OSError as exc:
            lost_line(exc)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stdlib handler to stderr that, on a broken pipe, drops the line (``lost_line``).

    logging's own ``handleError`` would print a report of the failure to the same stderr.
    """

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 -- logging's name
        """Drop the line stderr would not take; other failures as logging reports them."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            lost_line(exc)
            return
        super().handleError(record)


def log_info(logger: str, event: str, **fields: object) -> None:
    """An info line through structlog once ``configure_logging`` ran; before, as it would write.

    For what may happen either side of it (a signal while the settings are read, or after).
    """
    if structlog.is_configured():
        structlog.get_logger(logger).info(event, **fields)
        return
    write_event(event, "info", fields)


def _json_handler() -> logging.Handler:
    """A stdlib handler writing JSON lines (``SafeFormatter``) to stderr."""
    handler = _StderrHandler(sys.stderr)
    handler.setFormatter(SafeFormatter())
    handler.addFilter(SafeRecords())
    return handler


def capture_early() -> None:
    """Before the settings (and so the level) are read: warnings and log lines as JSON lines.

    A Python warning raised while the settings are read, or a library's log line then (a
    ``.env`` line python-dotenv cannot read), was printed by Python as plain text, its message
    and source line as they are. ``configure_logging`` takes over once the level is known. A
    root logger with handlers already (a test's) keeps them.
    """
    warnings.showwarning = _log_warning
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(_json_handler())


def configure_logging(level: str = "INFO") -> None:
    """Send structlog and stdlib logging to stderr as JSON lines at ``level``.

    An exception that ends the process is logged too (``process.crashed``), not printed by
    Python, which would print its message and its causes' as they are; so is one that ends a
    thread (``thread.crashed``) and one raised where nobody can catch it, in a finalizer
    (``process.unraisable``). A Python warning is one line too (``python.warning``), as
    ``logging.captureWarnings`` would route it, but without its text.
    """
    sys.excepthook = _log_crash
    sys.unraisablehook = _log_unraisable
    threading.excepthook = _log_thread_crash
    warnings.showwarning = _log_warning
    logging.basicConfig(handlers=[_json_handler()], level=level, force=True)
    for noisy in ("aiohttp.access", "aiogram.event"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            describe_exception_fields,
            structlog.processors.ExceptionRenderer(_format_exc_info),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=lambda *_, stderr=sys.stderr: _StderrLogger(stderr),
        cache_logger_on_first_use=False,
    )
