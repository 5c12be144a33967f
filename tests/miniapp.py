"""Shared parts of the Mini App tests: Telegram's signed ``initData``, and a page in Python.

``init_data`` signs launch data the way Telegram does (HMAC-SHA256 keyed with
HMAC("WebAppData", bot token)). ``PythonPage`` plays the page's part over the bot's API with
the reference implementation (``sealed``): tests/test_webapp_crypto.py shows the real page's
code agrees with it byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ed25519
from playwright.async_api import async_playwright

from bot.settings import BotSettings
from sealed.auth import cancel_proof
from sealed.auth import receipt_proof as make_receipt_proof
from sealed.bundle import verify_bundle
from sealed.encoding import b64e
from sealed.request import encode_inner, new_request_secrets, seal_request
from sealed.stream import ChunkOpener, Delta, Final, Reasoning
from sealed.suites import Suite
from tests.botstack import TOKEN, bot_env, polling_bot
from tests.fakes.relay import RecordingProxy, TamperingRelay
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vllm import FakeVLLM
from tests.harness import run_gateway

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

    from playwright.async_api import Browser

    from bot.app import Veil
    from gateway.shaping import Shaping
    from models import Store
    from models.holds import HoldState
    from tests.harness import RunningGateway

# The browser the page tests drive (Debian's; a test that needs it skips without it).
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright until the block ends."""
    async with async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


USER_ID = 777001
# The bundle's libraries need Node.js 20 or later (@noble/curves' "engines").
NODE_MAJOR = 20


def node_ready() -> str | None:
    """The ``node`` to run the bundle with, or None when it is missing or older than 20."""
    node = shutil.which("node")
    if node is None:
        return None
    version = subprocess.run(  # noqa: S603 -- the node found on PATH, no shell
        [node, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    major = version.removeprefix("v").split(".")[0]
    return node if major.isdigit() and int(major) >= NODE_MAJOR else None


def init_data(
    user_id: int = USER_ID,
    *,
    token: str = TOKEN,
    auth_date: float | None = None,
    language: str = "en",
) -> str:
    """``initData`` as Telegram signs it for the bot with ``token``."""
    user = {"id": user_id, "first_name": "Ann", "language_code": language}
    fields = {
        "user": json.dumps(user, separators=(",", ":")),
        "chat_instance": "-42",
        "chat_type": "sender",
        "auth_date": str(int(time.time() if auth_date is None else auth_date)),
    }
    check = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields, quote_via=quote)


def page_url(base: str, data: str) -> str:
    """The URL Telegram opens: the page with its launch parameters in the fragment."""
    theme = {  # Telegram's dark theme, as the Android app passes it
        "bg_color": "#17212b",
        "secondary_bg_color": "#232e3c",
        "text_color": "#f5f5f5",
        "hint_color": "#708499",
        "link_color": "#6ab3f3",
        "button_color": "#5288c1",
        "button_text_color": "#ffffff",
    }
    params = {
        "tgWebAppData": data,
        "tgWebAppVersion": "9.1",
        "tgWebAppPlatform": "android",
        "tgWebAppThemeParams": json.dumps(theme, separators=(",", ":")),
    }
    return f"{base}#{urlencode(params, quote_via=quote)}"


@dataclass
class Asked:
    """One question the Python page sent: its secrets and what came back."""

    status: int
    request_id: bytes = b""
    response_key: bytes = b""
    error: dict[str, Any] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)  # a reasoning model's, apart
    final: Final | None = None
    raw: bytes = b""

    @property
    def text(self) -> str:
        """The answer."""
        return "".join(self.texts)


@dataclass
class PythonPage:
    """The page's side of the bot's API, done in Python."""

    http: aiohttp.ClientSession
    base: str  # the Mini App's URL, ending in "/"
    pinned: bytes  # the operator key the page pins
    data: str = field(default_factory=init_data)

    @property
    def auth(self) -> dict[str, str]:
        """The ``Authorization`` header."""
        return {"Authorization": f"tma {self.data}"}

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        """GET an API path; (status, JSON)."""
        async with self.http.get(self.base + path, headers=self.auth) as response:
            return response.status, await response.json(content_type=None)

    async def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST JSON to an API path; (status, JSON)."""
        async with self.http.post(self.base + path, json=body, headers=self.auth) as response:
            return response.status, await response.json(content_type=None)

    async def seal(
        self,
        chat: dict[str, Any],
        *,
        max_tokens: int | None = None,
        receipt_proof: bytes | None = None,
        key_id: bytes | None = None,
    ) -> tuple[dict[str, str], bytes, Asked]:
        """Prepare, verify the bundle and seal: the ``api/relay`` headers, body and secrets.

        ``max_tokens`` and ``receipt_proof`` replace what an honest page declares; ``key_id``
        names another key in the request's header than the bundle's (the gateway holds none).
        """
        size = len(encode_inner(chat, request_id=bytes(16), response_key=bytes(32), timestamp=0))
        status, offer = await self.post("api/prepare", {"model": chat["model"], "size": size})
        assert status == 200, offer
        chat = {**chat, "max_completion_tokens": max_tokens or offer["max_completion_tokens"]}
        first = offer["gateways"][0]
        signed = verify_bundle(first["bundle"], {self.pinned}, now=int(time.time()))
        request_id, response_key = new_request_secrets()
        bundle = signed.bundle if key_id is None else replace(signed.bundle, key_id=key_id)
        body = seal_request(
            bundle,
            chat,
            request_id=request_id,
            response_key=response_key,
            timestamp=int(time.time()),
        )
        headers = {
            **self.auth,
            "Content-Type": "application/vnd.veil.sealed-request",
            "Veil-Gateway": str(first["gateway"]),
            "Veil-Request-Id": request_id.hex(),
            "Veil-Model": quote(chat["model"], safe=""),  # percent-encoded, as the page sends it
            "Veil-Max-Tokens": str(chat["max_completion_tokens"]),
            "Veil-Proof": b64e(receipt_proof or make_receipt_proof(response_key, request_id)),
        }
        return headers, body, Asked(0, request_id, response_key)

    @contextlib.asynccontextmanager
    async def relay(
        self,
        chat: dict[str, Any],
        *,
        max_tokens: int | None = None,
        receipt_proof: bytes | None = None,
    ) -> AsyncIterator[tuple[aiohttp.ClientResponse, Asked]]:
        """Prepare, verify the bundle, seal and POST; yields the open response and its secrets.

        ``max_tokens`` and ``receipt_proof`` replace what an honest page declares.
        """
        headers, body, asked = await self.seal(
            chat, max_tokens=max_tokens, receipt_proof=receipt_proof
        )
        async with self.http.post(
            self.base + "api/relay", data=io.BytesIO(body), headers=headers
        ) as response:
            asked.status = response.status
            yield response, asked

    async def ask(self, question: str, model: str = "veil-test", **kwargs: Any) -> Asked:  # noqa: ANN401 -- relay's options
        """One question to its end: the opened answer, or the refusal."""
        chat = {"model": model, "messages": [{"role": "user", "content": question}]}
        async with self.relay(chat, **kwargs) as (response, asked):
            if response.status != 200:
                asked.error = (await response.json())["error"]
                return asked
            asked.raw = await response.read()
        read_stream(asked)
        return asked

    async def stop(self, asked: Asked, proof: bytes | None = None) -> tuple[int, dict[str, Any]]:
        """Send the page's cancel proof (or another)."""
        proof = proof or cancel_proof(asked.response_key, asked.request_id)
        return await self.post(
            "api/stop", {"request_id": asked.request_id.hex(), "proof": b64e(proof)}
        )


async def read_to_break(response: aiohttp.ClientResponse) -> bytes:
    """What comes of a stream the bot breaks (the gateway's broke), as a page reads it."""
    data = bytearray()
    with contextlib.suppress(aiohttp.ClientPayloadError):
        async for piece in response.content.iter_any():
            data += piece
    return bytes(data)


def read_stream(asked: Asked) -> None:
    """Open ``asked.raw`` as the page does, every check included."""
    opener = ChunkOpener(asked.response_key)
    for record in opener.feed(asked.raw):
        if isinstance(record, Delta):
            asked.texts.append(record.text)
        elif isinstance(record, Reasoning):
            asked.thinking.append(record.text)
        else:
            asked.final = record
    opener.close()


async def hold_of(store: Store, request_id: bytes) -> HoldState | None:
    """The ledger's hold (and how it ended) for a request id."""
    from models import holds  # noqa: PLC0415 -- only the tests that look at the ledger

    return await store.read(lambda db: holds.get_hold(db, request_id.hex()))


async def settled(stack: MiniStack, request_id: bytes) -> HoldState:
    """The hold once it is closed."""
    async with asyncio.timeout(20):
        while (state := await hold_of(stack.store, request_id)) is None or state.charge is None:  # noqa: ASYNC110 -- the ledger has no event
            await asyncio.sleep(0.05)
    return state


@dataclass
class MiniStack:
    """Fake Telegram ← bot (with its Mini App) → gateway → fake vLLM, with recording proxies.

    ``to_gateway`` records every byte between the bot and the gateway, ``to_bot`` every byte
    between the page and the bot's web server; ``base`` is the Mini App's URL through it.
    """

    telegram: FakeTelegram
    vllm: FakeVLLM
    gateway: RunningGateway
    veil: Veil
    data_dir: Path
    to_gateway: RecordingProxy
    to_bot: RecordingProxy
    tampering: TamperingRelay
    base: str
    second: RunningGateway | None = None  # ``webapp_stack(second_gateway=True)``'s, offered next

    @property
    def store(self) -> Store:
        """The bot's database."""
        return self.veil.store

    def stored_bytes(self) -> bytes:
        """Every byte of every file the bot keeps (database, journal, their WAL files, keys)."""
        return b"".join(p.read_bytes() for p in sorted(self.data_dir.rglob("*")) if p.is_file())


def bot_address(stack: MiniStack) -> tuple[str, int]:
    """Where the bot's web server listens itself (no proxy between it and the test)."""
    assert stack.veil.webapp is not None
    url = urlsplit(stack.veil.webapp)
    assert url.hostname is not None
    assert url.port is not None
    return url.hostname, url.port


def raw_post(path: str, headers: dict[str, str], body: bytes) -> bytes:
    """An HTTP/1.1 POST as bytes on the wire."""
    head = [
        f"POST {path} HTTP/1.1",
        "Host: veil.example",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def page(stack: MiniStack, http: aiohttp.ClientSession, **kwargs: str) -> PythonPage:
    """A Python page on the stack's Mini App, trusting its gateway's operator key."""
    return PythonPage(http, stack.base, stack.gateway.verify_key, **kwargs)


def _host_port(url: str) -> tuple[str, int]:
    parsed = urlsplit(url)
    assert parsed.hostname is not None
    assert parsed.port is not None
    return parsed.hostname, parsed.port


@contextlib.asynccontextmanager
async def webapp_stack(  # noqa: PLR0913 -- every knob a test may turn
    data_dir: Path,
    *,
    answer: str | Callable[[dict[str, Any]], str] = "Hello from the fake model.",
    token_delay: float = 0.0,
    shaping: Shaping | None = None,
    tamper: bool = False,
    max_model_len: int = 4096,
    suite: Suite = Suite.X25519,
    models: Sequence[str] = ("veil-test",),
    second_gateway: bool = False,
    **settings: Any,  # noqa: ANN401 -- BotSettings overrides
) -> AsyncIterator[MiniStack]:
    """Run the whole chain with the Mini App served.

    ``max_model_len`` is the model's window (the gateway's bundle states it); ``suite`` the
    gateway's HPKE suite; ``models`` the models the model server serves; ``tamper`` sends the
    bot's gateway traffic through ``stack.tampering`` (then the recording proxy);
    ``second_gateway`` runs another gateway (``stack.second``, same operator key and model
    server, its own clock), listed after the first; ``settings`` override the bot's.
    """
    operator = ed25519.Ed25519PrivateKey.generate()
    async with (
        FakeTelegram(token=TOKEN) as telegram,
        FakeVLLM(
            answer=answer, token_delay=token_delay, max_model_len=max_model_len, models=models
        ) as vllm,
        run_gateway(vllm.url, operator=operator, shaping=shaping, suite=suite) as gateway,
        RecordingProxy(*_host_port(gateway.url)) as to_gateway,
        TamperingRelay(to_gateway.url) as tampering,
        contextlib.AsyncExitStack() as more,
    ):
        target = tampering.url if tamper else to_gateway.url
        second = None
        if second_gateway:
            second = await more.enter_async_context(
                run_gateway(vllm.url, operator=operator, shaping=shaping, suite=suite)
            )
            target = f"{target},{second.url}"
        env = bot_env(telegram.url, target, gateway.verify_key, data_dir)
        config = BotSettings(
            **{
                "bot_token": env["VEIL_BOT_TOKEN"],
                "telegram_api": env["VEIL_TELEGRAM_API"],
                "gateways": env["VEIL_GATEWAYS"],
                "operator_keys": env["VEIL_OPERATOR_KEYS"],
                "data_dir": data_dir,
                "draft_interval": 0.25,
                "free_tokens_per_day": 1_000_000,
                "webapp_url": "http://127.0.0.1/app/",
                "webapp_port": 0,
                "stop_grace": 5.0,
                **settings,
            }
        )
        async with polling_bot(config) as veil:
            assert veil.webapp is not None
            async with RecordingProxy(*_host_port(veil.webapp)) as to_bot:
                yield MiniStack(
                    telegram,
                    vllm,
                    gateway,
                    veil,
                    data_dir,
                    to_gateway,
                    to_bot,
                    tampering,
                    to_bot.url + "/app/",
                    second,
                )
