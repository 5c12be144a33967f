"""Nothing secret in the logs when the world misbehaves: what reaches stderr, rendered for real.

The friendly paths are covered where they run (``test_bot_privacy``, the gateway's tests); these
tests attack the error paths. Each logs through ``configure_logging``'s real processors and
handlers into a captured stderr (``structlog.testing.capture_logs`` skips the rendering, which
is where exceptions turned into text), then searches it for the question, the answer and the
bot token:

- the exceptions that quote their input (pydantic, aiogram's decode error, ``KeyError``,
  ``ValueError``, the model server's words in ``BackendError``...), through each way they are
  logged: a bug's traceback, an exception as a field, the stdlib loggers aiogram uses;
- asyncio's own reports ("Task exception was never retrieved", "Exception in callback"), which
  print the reprs of tasks and of a callback's arguments; a traceback another handler rendered
  first;
- a hostile network between the bot and Telegram (``tests/fakes/hostile.py``): redirects to a
  login page or in a loop, HTML pages quoting the request, cut and garbled replies, a page
  naming a charset that is no text encoding, a reply that does not validate; first at the
  bot's Telegram client, then through the whole bot, long polling and answering, and a
  ``python -m bot`` that cannot start behind it;
- the gateway refusing sealed plaintexts that quote the question where a value goes, and the
  model server's error quoting the prompt (sealed on the wire, out of both logs);
- a refusal in clear (a broken or hostile gateway, a proxy) whose code quotes the question, met
  by the bot's inference client and by the Mini App's relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import json
import logging
import sys
import threading
import warnings
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import structlog
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import ClientDecodeError, TelegramBadRequest
from aiogram.methods import SendMessage
from aiogram.types import Message
from aiohttp import web

from bot.telegram import build_bot
from common.logs import SafeFormatter, configure_logging, without_credentials
from handlers.failures import log_bug
from services.errors import BackendError, InferenceError
from services.inference import ChatRequest, InferenceClient
from services.ton.chain import WalletAddress
from tests.botstack import bot_env, running_stack
from tests.fakes.hostile import MODES, HostileTelegram
from tests.fakes.relay import RecordingProxy
from tests.fakes.vllm import FakeVLLM
from tests.harness import (
    CLIENT_KEY,
    MESSAGES,
    Clock,
    ManagedProcess,
    RunningGateway,
    run_gateway,
    run_python,
    seal_call,
)
from tests.miniapp import PythonPage, webapp_stack

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
    from pathlib import Path

QUESTION = "SECRET-QUESTION-7f3a"
ANSWER = "SECRET-ANSWER-b2c9"
TOKEN = "987654:LEAKY-TOKEN-d4e5f6a7b8"
MARKERS = (QUESTION, ANSWER, "LEAKY-TOKEN-d4e5f6a7b8")
USER = 7301


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The process's stderr while ``configure_logging`` (as the bot and gateway run it) is on."""
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    hooks_set = (
        (sys, "excepthook"),
        (sys, "unraisablehook"),
        (threading, "excepthook"),
        (warnings, "showwarning"),
    )
    for hooks, name in hooks_set:
        monkeypatch.setattr(hooks, name, getattr(hooks, name))  # put back afterwards
    configure_logging("INFO")
    yield stream
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def assert_clean(logged: str) -> None:
    for marker in MARKERS:
        assert marker not in logged, f"{marker} reached the log:\n{logged}"


def _raised(make: Callable[[], object]) -> BaseException:
    try:
        make()
    except BaseException as exc:  # noqa: BLE001 -- whatever it raises is the point
        return exc
    raise AssertionError("expected an exception")


def _undecodable_reply() -> object:
    """Aiogram reading a ``sendMessage`` result without its chat: the text comes back in it."""
    method = SendMessage(chat_id=USER, text=ANSWER)
    reply = {"ok": True, "result": {"message_id": 1, "date": 0, "text": ANSWER}}
    return AiohttpSession().check_response(Bot(TOKEN), method, 200, json.dumps(reply))


def _chained() -> object:
    try:
        return _lookup({}, QUESTION)
    except KeyError as exc:
        raise RuntimeError("lookup failed") from exc


def _grouped() -> object:
    raise ExceptionGroup("answers failed", [ValueError(QUESTION), KeyError(ANSWER)])


# Each: how the exception is made, and what the log must still say about it.
EXCEPTIONS: dict[str, tuple[Callable[[], object], tuple[str, ...]]] = {
    "pydantic": (
        lambda: Message.model_validate({"message_id": 1, "date": 0, "text": QUESTION}),
        ("ValidationError", "chat missing"),
    ),
    "aiogram-decode": (_undecodable_reply, ("ClientDecodeError", "ValidationError")),
    "json": (lambda: json.loads(f'{{"text": "{QUESTION}", '), ("JSONDecodeError", "line 1")),
    "unicode": ((QUESTION.encode() + b"\xff").decode, ("UnicodeDecodeError", "utf-8")),
    "key": (lambda: _lookup({}, QUESTION), ("KeyError",)),
    "value": (lambda: int(QUESTION), ("ValueError",)),
    "ton-address": (lambda: WalletAddress.parse(QUESTION), ("ValueError",)),
    "model-server": (
        lambda: _raise(BackendError(f"prompt {QUESTION!r} has a bad token", status=400)),
        ("BackendError",),
    ),
    "telegram": (
        lambda: _raise(
            TelegramBadRequest(
                method=SendMessage(chat_id=USER, text=ANSWER),
                message=f'Bad Request: can\'t parse entities: Unsupported start tag "{ANSWER}"',
            )
        ),
        ("TelegramBadRequest: sendMessage (description withheld)",),
    ),
    "url": (lambda: _raise(aiohttp.InvalidURL(f"http://x/bot{TOKEN}/getMe")), ("InvalidURL",)),
    "chained": (_chained, ("RuntimeError (message withheld)", "KeyError", "direct cause")),
    "group": (_grouped, ("ExceptionGroup", "ValueError", "KeyError")),
}


def _lookup(table: dict[str, str], key: str) -> str:
    return table[key]


def _raise(exc: BaseException) -> object:
    raise exc


@pytest.mark.parametrize("kind", EXCEPTIONS)
def test_exceptions_that_quote_their_input_are_logged_without_it(
    kind: str, stderr: io.StringIO
) -> None:
    make, said = EXCEPTIONS[kind]
    error = _raised(make)
    log_bug(error)  # a bug's line: handler_failed with the traceback
    structlog.get_logger("veil.test").warning("test.failed", error=error)  # as a field
    logging.getLogger("aiogram.event").error(  # aiogram's words for a handler's failure
        "Cause exception while process update id=%d by bot id=%d\n%s: %s",
        1,
        2,
        type(error).__name__,
        error,
        exc_info=error,
    )
    logged = stderr.getvalue()
    assert_clean(logged)
    lines = logged.splitlines()
    bug = json.loads(lines[0])
    assert bug["event"] == "handler_failed"
    assert "Traceback (most recent call last)" in bug["exception"]
    assert "_raised" in bug["exception"]  # the frames are kept
    assert json.loads(lines[1])["event"] == "test.failed"
    # Every line is JSON, the libraries' too (aiogram's was its plain message: a log pipeline
    # reading JSON lines choked on it), with the same fields as structlog's.
    (aiogram,) = [json.loads(line) for line in lines[2:]]
    assert aiogram["event"].startswith("Cause exception while process update id=1")
    assert (aiogram["level"], aiogram["logger"]) == ("error", "aiogram.event")
    assert aiogram["timestamp"].endswith("Z")
    assert "_raised" in aiogram["exception"]  # its traceback, rendered as ours are
    for words in said:
        assert words in bug["exception"], (words, bug["exception"])
    assert type(error).__name__ in json.loads(lines[1])["error"]


def test_a_traceback_another_handler_rendered_first_is_rendered_again(
    stderr: io.StringIO,
) -> None:
    root = logging.getLogger()
    elsewhere = io.StringIO()
    root.handlers.insert(0, logging.StreamHandler(elsewhere))  # a library's, say
    try:
        _lookup({}, QUESTION)
    except KeyError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    assert QUESTION in elsewhere.getvalue()  # Python's own rendering, cached on the record
    logged = stderr.getvalue()
    assert_clean(logged)
    assert "KeyError (message withheld)" in logged


class _Unprintable:
    """A library's message object whose ``str`` fails."""

    def __str__(self) -> str:
        raise RuntimeError(QUESTION)


def test_a_library_s_line_that_does_not_format_is_kept_as_json_without_its_arguments(
    stderr: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    # getMessage raised for each: logging lost the line and wrote "--- Logging error ---" with
    # the arguments (the text) in plain text; from asyncio's filter it raised to the caller.
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h.formatter, SafeFormatter)]
    monkeypatch.setattr(root, "handlers", ours)  # not pytest's capture, which raises on them
    logging.getLogger("aiohttp.server").warning("Error handling %s for %s", QUESTION)  # noqa: PLE1206
    logging.getLogger("aiogram.dispatcher").error(_Unprintable())
    logging.getLogger("asyncio").error("Exception in callback %d", ANSWER)
    logged = stderr.getvalue()
    assert_clean(logged)
    lines = [json.loads(line) for line in logged.splitlines()]
    assert [(line["logger"], line["event"]) for line in lines] == [
        ("aiohttp.server", "Error handling %s for %s"),
        ("aiogram.dispatcher", "_Unprintable (message withheld)"),
        ("asyncio", "Exception in callback %d"),
    ]


def _fail(text: str) -> None:
    raise ValueError(text)


async def _unretrieved_task() -> str:
    async def fails() -> None:
        _fail(QUESTION)

    task = asyncio.get_running_loop().create_task(fails())
    await asyncio.sleep(0)
    assert task.done()
    del task
    gc.collect()  # the task's destructor reports the exception nobody retrieved
    return "Task exception was never retrieved"


async def _failing_callback() -> str:
    asyncio.get_running_loop().call_soon(_fail, QUESTION)  # its arguments' reprs: the text
    await asyncio.sleep(0)
    return "Exception in callback _fail"


@pytest.mark.parametrize("failure", [_unretrieved_task, _failing_callback])
async def test_asyncio_s_own_reports_are_logged_without_reprs(
    failure: Callable[[], Awaitable[str]], stderr: io.StringIO
) -> None:
    said = await failure()
    logged = stderr.getvalue()
    assert_clean(logged)
    assert said in logged
    assert "ValueError (message withheld)" in logged
    assert "in _fail" in logged  # its traceback


# An exception Python cannot raise to anyone: one in a finalizer (an object's ``__del__``, a
# generator closed by the collector) and one that ends a thread. Python printed each itself,
# its message and the repr of the object as they are, in plain text among the JSON lines.
_UNRAISED = f"""
import gc, threading
from common.logs import configure_logging

configure_logging("INFO")


class Holder:
    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return f"Holder({{self.text!r}})"

    def __del__(self):
        raise ValueError(self.text)


def lookup():
    return {{}}[{QUESTION!r}]


Holder({ANSWER!r})
gc.collect()
thread = threading.Thread(target=lookup, name="lookup")
thread.start()
thread.join()
"""


def test_exceptions_python_cannot_raise_are_logged_as_json_without_their_text() -> None:
    result = run_python("-c", _UNRAISED)
    assert result.returncode == 0, result.stderr
    assert_clean(result.stderr)
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(line["event"], line["error"]) for line in lines] == [
        ("process.unraisable", "ValueError"),
        ("thread.crashed", "KeyError"),
    ]
    assert "ValueError (message withheld)" in lines[0]["exception"]
    assert "in __del__" in lines[0]["exception"]  # its traceback
    assert "KeyError (message withheld)" in lines[1]["exception"]
    assert lines[1]["thread"] == "lookup"


@pytest.mark.parametrize("mode", MODES)
async def test_a_hostile_network_s_answers_leave_no_token_or_text_in_the_error(
    mode: str, stderr: io.StringIO
) -> None:
    async with HostileTelegram(token=TOKEN) as telegram:
        telegram.send_text(USER, "hello")  # the chat exists
        bot = build_bot(TOKEN, telegram.url)
        tries = 2 if mode == "undescribed_502" else 1  # a 5xx is tried once more by the session
        try:
            for _ in range(tries):
                telegram.misbehave("sendMessage", mode)
            with pytest.raises(Exception) as caught:  # noqa: PT011 -- each mode its own error
                # (silent, late: the call's own timeout, not aiogram's minute, ends the wait)
                await bot.send_message(
                    USER, ANSWER, request_timeout=2 if mode in {"silent", "late"} else None
                )
        finally:
            await bot.session.close()
    assert telegram.misbehaved == [("sendMessage", mode)] * tries
    if mode in {"latin1", "charset"}:  # an unreadable reply, as a page that is not JSON
        assert isinstance(caught.value, ClientDecodeError)
    assert_clean(str(caught.value))  # the error itself: aiogram's logs print it as it is
    before = len(stderr.getvalue())  # the session's own warnings (a 5xx tried again) come first
    log_bug(caught.value)
    logging.getLogger("aiogram.dispatcher").error(  # aiogram's words for a failed poll
        "Failed to fetch updates - %s: %s", type(caught.value).__name__, caught.value
    )
    logged = stderr.getvalue()
    assert_clean(logged)
    assert type(caught.value).__name__ in json.loads(logged[before:].splitlines()[0])["exception"]


async def test_the_bot_under_a_hostile_network_logs_no_token_question_or_answer(
    tmp_path: Path, stderr: io.StringIO
) -> None:
    telegram = HostileTelegram(token=TOKEN)
    answering: Callable[[dict[str, Any]], bool] = lambda p: ANSWER in str(p.get("text", ""))  # noqa: E731
    async with running_stack(
        tmp_path, answer=f"Here is {ANSWER}.", telegram_server=telegram, bot_token=TOKEN
    ) as stack:
        polls = len(telegram.calls_of("getUpdates"))
        telegram.misbehave("getUpdates", "loop")
        await telegram.wait_for("getUpdates", lambda _c: len(telegram.misbehaved) == 1)
        await telegram.wait_for("getUpdates")  # polling recovered (after aiogram's backoff)
        assert len(telegram.calls_of("getUpdates")) > polls
        telegram.misbehave("sendMessage", "malformed", when=answering)
        stack.telegram.send_text(USER, QUESTION)
        # Telegram said ok with a Message that does not validate: the answer went out, and its
        # unreadable reply is logged by what it is, never by what it quotes.
        await stack.stored_turns(USER, 2)
    assert ("sendMessage", "malformed") in telegram.misbehaved
    logged = stderr.getvalue()
    assert_clean(logged)
    # A redirect is not followed (it would carry the call, and the token in its URL, where it
    # names): it is a reply that is not the Bot API's.
    assert (
        "Failed to fetch updates - UnreadableReply: UnreadableReply: getUpdates:"
        " a redirect (HTTP 307), not followed"
    ) in logged
    assert "streaming.final_unreadable" in logged
    assert "UnreadableReply: sendMessage: Failed to deserialize object: ValidationError" in logged


# Plaintexts that open but are not chats the gateway takes, the question where a value goes.
HOSTILE_CHATS: dict[str, dict[str, Any]] = {
    "role": {"model": "veil-test", "messages": [{"role": QUESTION, "content": "hi"}]},
    "model": {"model": QUESTION, "messages": MESSAGES},
    "field": {"model": "veil-test", "messages": MESSAGES, QUESTION: 1},
    "number": {"model": "veil-test", "messages": MESSAGES, "temperature": QUESTION},
    "stop": {"model": "veil-test", "messages": MESSAGES, "stop": [QUESTION * 40]},
    "part": {
        "model": "veil-test",
        "messages": [{"role": "user", "content": [{"type": QUESTION, "text": QUESTION}]}],
    },
    "image": {
        "model": "veil-test",
        "messages": [
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": QUESTION}}]}
        ],
    },
}


@pytest.mark.parametrize("name", HOSTILE_CHATS)
async def test_the_gateway_refuses_a_hostile_plaintext_without_quoting_it(
    name: str, stderr: io.StringIO, gateway: RunningGateway, http: aiohttp.ClientSession
) -> None:
    call = seal_call(gateway, HOSTILE_CHATS[name])
    url = f"{gateway.url}/v1/sealed/chat/completions"
    async with http.post(url, data=call.body, headers=dict(call.headers())) as reply:
        body = await reply.read()
    assert reply.status == 400
    assert QUESTION.encode() not in body  # the refusal travels in clear
    logged = stderr.getvalue()
    assert_clean(logged)
    assert '"event": "gateway.refused"' in logged


async def test_a_model_server_error_quoting_the_prompt_stays_sealed_and_out_of_the_logs(
    tmp_path: Path, stderr: io.StringIO
) -> None:
    async with running_stack(tmp_path) as stack:
        host, port = stack.gateway.url.removeprefix("http://").split(":")
        async with RecordingProxy(host, int(port)) as proxy:
            stack.veil.chat.inference._gateways[0].url = proxy.url
            # vLLM quotes the prompt in some validation errors (REFERENCE.md)
            stack.vllm.fail_before_stream = (400, f"prompt {QUESTION!r} has an invalid token")
            stack.telegram.send_text(USER, QUESTION)
            await stack.telegram.wait_for(
                "sendMessage", lambda c: "could not answer" in c.params.get("text", "")
            )
    assert stack.vllm.requests[-1]["messages"][-1]["content"] == QUESTION  # it got that far
    assert proxy.captured
    assert QUESTION.encode() not in proxy.captured  # sealed on the way back too
    logged = stderr.getvalue()
    assert_clean(logged)
    assert '"error": "BackendError"' in logged


@contextlib.asynccontextmanager
async def refusing_front(gateway_url: str, status: int) -> AsyncIterator[str]:
    """A gateway's real key bundle, and a refusal quoting the question for every request.

    What a broken or hostile gateway (or a proxy's page in its place) can send in clear.
    """

    async def keys(_request: web.Request) -> web.Response:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{gateway_url}/v1/keys") as reply,
        ):
            return web.Response(body=await reply.read(), content_type="application/json")

    async def refuse(request: web.Request) -> web.Response:
        await request.read()
        error = {"code": f"{QUESTION} was refused", "message": f"you asked {QUESTION}"}
        return web.json_response({"error": error}, status=status)

    app = web.Application()
    app.router.add_get("/v1/keys", keys)
    app.router.add_post("/v1/sealed/chat/completions", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("status", [400, 401, 503])
async def test_a_gateway_refusal_quoting_the_question_is_logged_and_raised_without_it(
    status: int,
    stderr: io.StringIO,
    gateway: RunningGateway,
    http: aiohttp.ClientSession,
    clock: Clock,
) -> None:
    async with refusing_front(gateway.url, status) as url:
        client = InferenceClient(
            [url], [gateway.verify_key], http, clock=clock, client_key=CLIENT_KEY
        )
        request = ChatRequest(MESSAGES, model="veil-test", cache_salt="s")
        with pytest.raises(InferenceError) as caught:
            async for _item in client.stream(request):
                pass
    assert_clean(str(caught.value))
    log_bug(caught.value)
    logged = stderr.getvalue()
    assert_clean(logged)
    assert type(caught.value).__name__ in logged
    if status == 400:
        assert "gateway refused the request: HTTP 400 unknown" in logged


async def test_the_bot_process_that_cannot_start_behind_a_hostile_network_logs_no_token(
    tmp_path: Path,
) -> None:
    # getMe is sent to a login page that would quote the Bot API URL, token and all (the
    # redirect is not followed: the 302 itself is the reply that is not the Bot API's).
    mode = "login"
    async with (
        HostileTelegram(token=TOKEN) as telegram,
        FakeVLLM() as vllm,
        run_gateway(vllm.url, clock=Clock()) as gateway,
    ):
        telegram.misbehave("getMe", mode)
        env = bot_env(telegram.url, gateway.url, gateway.verify_key, tmp_path / "data")
        bot = await ManagedProcess.start("-m", "bot", env={**env, "VEIL_BOT_TOKEN": TOKEN})
        try:
            async with asyncio.timeout(60):
                await bot.process.wait()
        finally:
            code = await bot.stop()  # reads the rest of its output (kills it if it still runs)
    assert code == 1
    assert telegram.misbehaved == [("getMe", mode)]
    assert_clean(bot.output)
    assert "process.crashed" not in bot.output  # one line naming the setting, no traceback
    assert bot.lines[-1].startswith(f"veil: Telegram at {telegram.url}")
    assert (
        "(VEIL_TELEGRAM_API) could not serve the bot now: UnreadableReply: getMe:"
        " a redirect (HTTP 302), not followed"
    ) in bot.lines[-1]


async def test_a_refusal_quoting_the_question_reaches_neither_the_log_nor_the_mini_app(
    tmp_path: Path, stderr: io.StringIO, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path) as stack:
        mini = PythonPage(http, stack.base, stack.gateway.verify_key)
        assert (await mini.ask("warm up")).status == 200  # the bot has the bundle
        async with refusing_front(stack.gateway.url, 400) as front:
            assert stack.veil.relay is not None
            for gateway in stack.veil.relay._pool.gateways:
                gateway.url = front
            asked = await mini.ask(QUESTION)
    logged = stderr.getvalue()
    assert_clean(logged)
    assert '"event": "relay.refused"' in logged
    assert asked.status == 502
    assert asked.error is not None
    assert (asked.error["gateway_status"], asked.error["gateway_code"]) == (400, "unknown")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://veil:s3cret@proxy.example/bot", "https://proxy.example/bot"),
        # A raw "@" in the password: cut at the first one, the rest of the password stayed.
        ("https://veil:p@ss@proxy.example:8443/x?y=1", "https://proxy.example:8443/x?y=1"),
        ("https://proxy.example/a@b?c=d@e", "https://proxy.example/a@b?c=d@e"),
        ("http://127.0.0.1:8081", "http://127.0.0.1:8081"),
    ],
)
def test_a_url_is_shown_without_its_user_and_password(url: str, shown: str) -> None:
    assert without_credentials(url) == shown
