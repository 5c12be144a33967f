"""The whole chain for bot tests: fake Telegram ← bot → gateway → fake vLLM, on 127.0.0.1.

``running_stack`` runs the real bot in-process (``bot.app.running_veil`` + long polling) so
tests see coverage and run fast; ``bot_env`` gives the same settings as environment variables
for the tests that start ``python -m bot`` as a process.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.methods import GetUpdates

from bot.app import SWEEP_EVERY_S, Veil, register_commands, running_veil, running_webhook
from bot.settings import BotSettings
from models import UserNotFound
from sealed.encoding import b64e
from tests.fakes.telegram import Call, FakeTelegram
from tests.fakes.vllm import FakeVLLM
from tests.harness import CLIENT_KEY, Clock, RunningGateway, install_client_key, run_gateway

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from pathlib import Path

    from aiogram import Bot
    from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
    from aiogram.methods import Response, TelegramMethod
    from aiogram.methods.base import TelegramType

    from gateway.limits import Limits

TOKEN = "123456:TEST-TOKEN"
# ``final_retry_wait`` (``VEIL_FINAL_RETRY_WAIT``) for a test that waits out a final message's
# tries (Telegram down past them): 0.05 + 0.1 + 0.2 + 0.4 s between them, not 1 + 2 + 4 + 8.
QUICK_RETRY = 0.05
WEBHOOK_SECRET = "test-webhook-secret-0123456789-abcdef"


@dataclass
class Stack:
    """Everything a bot test talks to."""

    telegram: FakeTelegram
    vllm: FakeVLLM
    gateway: RunningGateway
    veil: Veil
    data_dir: Path
    webhook_url: str = ""  # where the bot listens, in webhook mode

    async def final_messages(
        self, chat_id: int, count: int = 1, within: float = 10
    ) -> list[dict[str, Any]]:
        """Wait until the bot has sent ``count`` messages to the chat; return them all."""
        async with asyncio.timeout(within):
            while len(self.telegram.sent_messages(chat_id)) < count:  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)
        return self.telegram.sent_messages(chat_id)

    async def stored_turns(self, user_id: int, count: int, within: float = 10) -> list[str]:
        """Wait until the user's active conversation holds ``count`` turns; return their texts.

        The exchange is stored with the answer's charge, while the final message goes out (a
        final message Telegram refuses at first is still being tried then): a test that reads
        what was sent waits for it too (``final_messages``, or ``veil.chat.wait_idle``).
        """
        store = self.veil.store
        async with asyncio.timeout(within):
            while True:
                with contextlib.suppress(UserNotFound):  # the first message is not in yet
                    conversation = await store.active_conversation(user_id)
                    turns = await store.history(user_id, conversation)
                    if len(turns) >= count:
                        return [turn.text for turn in turns]
                await asyncio.sleep(0.02)

    async def stored_turns_in(
        self, user_id: int, thread_id: int, count: int, within: float = 10
    ) -> list[str]:
        """Wait until the conversation of the user's topic holds ``count`` turns; their texts."""
        store = self.veil.store
        async with asyncio.timeout(within):
            while True:
                found = [
                    c.conversation_id
                    for c in await store.conversations(user_id, limit=1000)
                    if c.thread_id == thread_id
                ]
                if found:
                    turns = await store.history(user_id, found[0])
                    if len(turns) >= count:
                        return [turn.text for turn in turns]
                await asyncio.sleep(0.02)

    async def answered_presses(self, count: int, within: float = 10) -> None:
        """Wait until Telegram has ``count`` button presses answered, and their redraws settle."""
        async with asyncio.timeout(within):
            while len(self.telegram.calls_of("answerCallbackQuery")) < count:  # noqa: ASYNC110 -- polls the fake's record
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)

    async def reply_text(self, chat_id: int, index: int = 0, within: float = 10) -> str:
        """The text of the bot's ``index``-th message to the chat (waiting for it)."""
        messages = await self.final_messages(chat_id, index + 1, within)
        return str(messages[index].get("text", ""))


def bot_env(
    telegram_url: str, gateway_url: str, verify_key: bytes, data_dir: Path
) -> dict[str, str]:
    """The environment ``python -m bot`` needs for the fake stack (the client key installed)."""
    install_client_key(data_dir)
    return {
        "VEIL_BOT_TOKEN": TOKEN,
        "VEIL_TELEGRAM_API": telegram_url,
        "VEIL_GATEWAYS": gateway_url,
        "VEIL_OPERATOR_KEYS": b64e(verify_key),
        "VEIL_DATA_DIR": str(data_dir),
        "VEIL_DRAFT_INTERVAL": "0.25",
        "VEIL_RICH_MESSAGES": "off",
        "VEIL_CONVERSATION_TITLES": "off",
        "VEIL_BOT_METRICS_PORT": "0",
    }


@dataclass
class ProcessStack:
    """What a ``python -m bot`` test talks to, and the environment that process needs."""

    telegram: FakeTelegram
    vllm: FakeVLLM
    gateway: RunningGateway
    env: dict[str, str]


@contextlib.asynccontextmanager
async def process_stack(
    data_dir: Path,
    *,
    answer: str = "Hello from the fake model.",
    token_delay: float = 0.0,
    telegram_server: FakeTelegram | None = None,
) -> AsyncIterator[ProcessStack]:
    """Fake Telegram, fake vLLM and a gateway, for a bot the test starts as a process.

    ``env`` (``bot_env``'s) starts ``python -m bot`` on ``data_dir`` against them;
    ``telegram_server`` is a fake Telegram of the test's own (not yet started).
    """
    async with (
        telegram_server or FakeTelegram(token=TOKEN) as telegram,
        FakeVLLM(answer=answer, token_delay=token_delay) as vllm,
        run_gateway(vllm.url, clock=Clock()) as gateway,
    ):
        env = bot_env(telegram.url, gateway.url, gateway.verify_key, data_dir)
        yield ProcessStack(telegram, vllm, gateway, env)


@contextlib.asynccontextmanager
async def running_stack(  # noqa: PLR0913 -- every knob a test may turn
    data_dir: Path,
    *,
    answer: str | Callable[[dict[str, Any]], str] = "Hello from the fake model.",
    models: tuple[str, ...] = ("veil-test",),
    token_delay: float = 0.0,
    gateway_url: str | None = None,
    extra_gateways: Sequence[str] = (),
    gateway_limits: Limits | None = None,
    model_server: FakeVLLM | None = None,
    webhook: bool = False,
    sweep_every: float = SWEEP_EVERY_S,
    telegram_server: FakeTelegram | None = None,
    **settings: Any,  # noqa: ANN401 -- BotSettings overrides
) -> AsyncIterator[Stack]:
    """Start fake Telegram, fake vLLM, a gateway and the bot; stop them all afterwards.

    ``extra_gateways`` are more gateway URLs the bot is given after the real one (dead ones,
    say); ``gateway_limits`` the gateway's timeouts and caps; ``model_server`` a fake vLLM of
    the test's own (not yet started); ``webhook`` serves a webhook instead of long polling;
    ``sweep_every`` how often the upkeep loop runs; ``telegram_server`` a fake Telegram of the
    test's own (not yet started).
    """
    clock = Clock()
    fake_vllm = model_server or FakeVLLM(answer=answer, models=models, token_delay=token_delay)
    async with (
        telegram_server or FakeTelegram(token=TOKEN) as telegram,
        fake_vllm as vllm,
        run_gateway(vllm.url, clock=clock, limits=gateway_limits) as gateway,
    ):
        urls = ",".join([gateway_url or gateway.url, *extra_gateways])
        env = bot_env(telegram.url, urls, gateway.verify_key, data_dir)
        config = BotSettings(
            **{
                "bot_token": env["VEIL_BOT_TOKEN"],
                "telegram_api": env["VEIL_TELEGRAM_API"],
                "gateways": env["VEIL_GATEWAYS"],
                "operator_keys": env["VEIL_OPERATOR_KEYS"],
                "data_dir": data_dir,
                "draft_interval": 0.25,
                "rich_messages": False,  # entity messages, as most tests read them; rich tests: on
                # No title requests, so the fake model's requests are only answers; title tests: on
                "conversation_titles": False,
                "free_tokens_per_day": 1_000_000,
                "bot_metrics_port": 0,
                **(
                    {
                        "webhook_url": "https://bot.example.com/telegram/hook",
                        "webhook_secret": WEBHOOK_SECRET,
                        "webhook_port": 0,
                    }
                    if webhook
                    else {}
                ),
                **settings,
            }
        )
        if webhook:
            async with webhook_bot(config, sweep_every) as (veil, url):
                await _upkept(veil)
                yield Stack(telegram, vllm, gateway, veil, data_dir, webhook_url=url)
        else:
            async with polling_bot(config, sweep_every) as veil:
                await _upkept(veil)
                yield Stack(telegram, vllm, gateway, veil, data_dir)


async def _upkept(veil: Veil) -> None:
    """Wait (10 s at most) for the upkeep's first pass, which runs beside the test otherwise.

    A test that holds and recovers an answer right after the start had the pass's cut-off
    notices tell it, or not, as the race went (``tests/test_bot_crash.py``). One whose Telegram
    fails from the start may still be in its pass after 10 s: it goes on beside the test, as
    it always did.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10):
            await veil.upkept.wait()


class FirstPoll(BaseRequestMiddleware):
    """Tells (``sent``) when the bot's first ``getUpdates`` goes out; every call passes as is."""

    def __init__(self) -> None:
        self.sent = asyncio.Event()

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """Note a poll, then make the call."""
        if isinstance(method, GetUpdates):
            self.sent.set()
        return await make_request(bot, method)


@contextlib.asynccontextmanager
async def polling_bot(
    config: BotSettings, sweep_every: float = SWEEP_EVERY_S
) -> AsyncIterator[Veil]:
    """The real bot, in-process, long-polling its Telegram until the block ends.

    The block begins once the bot's first ``getUpdates`` is on its way (an update the test
    queues from then on is the poll's), not once it is answered: the fake holds an empty poll
    for its whole timeout, and waiting that out cost every test a second.
    """
    async with running_veil(config, CLIENT_KEY, sweep_every=sweep_every) as veil:
        await register_commands(veil)
        first_poll = FirstPoll()
        veil.bot.session.middleware(first_poll)
        polling = asyncio.create_task(
            veil.dispatcher.start_polling(
                veil.bot,
                handle_signals=False,
                close_bot_session=False,
                polling_timeout=1,
                allowed_updates=veil.dispatcher.resolve_used_update_types(),
            )
        )
        try:
            async with asyncio.timeout(10):
                await first_poll.sent.wait()
            veil.bot.session.middleware.unregister(first_poll)
            yield veil
        finally:
            with contextlib.suppress(RuntimeError):
                await veil.dispatcher.stop_polling()
            await asyncio.wait_for(polling, 10)


@contextlib.asynccontextmanager
async def webhook_bot(
    config: BotSettings, sweep_every: float = SWEEP_EVERY_S
) -> AsyncIterator[tuple[Veil, str]]:
    """The real bot, in-process, serving its webhook; Telegram is told to call it."""
    async with (
        running_veil(config, CLIENT_KEY, recover_all=False, sweep_every=sweep_every) as veil,
        running_webhook(veil) as port,
    ):
        assert config.webhook_url is not None
        url = f"http://127.0.0.1:{port}{config.webhook_url.path}"
        await veil.bot.set_webhook(
            url,
            secret_token=WEBHOOK_SECRET,
            allowed_updates=veil.dispatcher.resolve_used_update_types(),
        )
        yield veil, url


def texts_of(calls: list[Call]) -> list[str]:
    """The ``text`` parameter of each call."""
    return [str(call.params.get("text", "")) for call in calls]
