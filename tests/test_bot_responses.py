"""What a bot's answers use of aiogram's models is built before it serves (``bot.app``).

aiogram's models are built on first use (``bot/aiogram_types.py``), and aiogram parses each
answer from Telegram into ``Response[T]``, a model pydantic builds the first time it meets
``T``. Met while answering, each build stopped the event loop (``Update`` 0.15 s, the first
final message 0.23 s): ``bot.telegram.prepare_models`` builds them before the bot serves. A
fresh interpreter, importing the bot before aiogram as ``python -m bot`` does, runs a private
answer, an inline query and its chosen result and a group's answer, with entities (the stacks'
default) and with rich messages (the bot's: ``sendRichMessage``, a draft's thinking block), and
a Stars purchase (``/buy``, its invoice, pre-checkout, payment) and a TON one (its QR code), and
records every aiogram model built once the bot was serving: there must be none. A one-shot
command's bot (``build_bot`` alone: ``bot reconcile``) builds none of them up front.
(The test process has long built every model it met: hence the fresh interpreter.)
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.harness import REPO, child_environment

PROBE = """
import asyncio, contextlib, json, sys, tempfile
from pathlib import Path

import bot  # first, as python -m bot: aiogram's models deferred
from aiogram.methods import Response
from bot import aiogram_types
from tests.botstack import running_stack
from tests.fakes.toncenter import FakeToncenter
from tests.tonstack import WALLET
from tests.harness import wait_until

USER, GROUP, ANN = 9101, -1_001_234_567, 9201
serving = False
built = []
rebuild = aiogram_types._Deferring.__call__


def recording(self, cls, **arguments):
    if serving and cls.__module__.startswith("aiogram.") and not cls.__pydantic_complete__:
        built.append(cls.__name__)
    return rebuild(self, cls, **arguments)


aiogram_types._Deferring.__call__ = recording


async def answers(stack):  # a private answer, an inline query and its result, a group's
    stack.telegram.send_text(USER, "Say something")
    await stack.final_messages(USER, 1)
    stack.telegram.inline_query(USER, "What is obsidian?")
    answered = await stack.telegram.wait_for("answerInlineQuery")
    (result,) = answered.params["results"]
    stack.telegram.choose_inline_result(
        USER, result["id"], "What is obsidian?", inline_message_id="probe-1"
    )
    await stack.telegram.wait_for("editMessageText")
    stack.telegram.send_text(ANN, "@veil_test_bot what is a kettle?", chat_id=GROUP)
    await wait_until(lambda: any(
        "One two three." in json.dumps(m) for m in stack.telegram.sent_messages(GROUP)
    ), within=60)


async def purchase(stack, pack):  # /buy and a pack's button; Stars: invoice to payment
    stack.telegram.send_text(USER, "/buy")
    menu = await stack.telegram.wait_for(
        "sendMessage", lambda c: c.params["chat_id"] == USER and "reply_markup" in c.params
    )
    (button,) = [
        row[0] for row in menu.params["reply_markup"]["inline_keyboard"] if pack in row[0]["text"]
    ]
    message = stack.telegram.sent_messages(USER)[-1]
    stack.telegram.press_button(USER, button["callback_data"], message_id=message["message_id"])
    if pack == "GRAM":
        await stack.telegram.wait_for("sendPhoto")  # the invoice's QR code
        return
    invoice = (await stack.telegram.wait_for("sendInvoice")).params
    stack.telegram.pre_checkout(USER, payload=invoice["payload"], total_amount=50)
    await stack.telegram.wait_for("answerPreCheckoutQuery")
    stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
    await stack.telegram.wait_for(
        "sendMessage", lambda c: str(c.params.get("text", "")).startswith("Thank you")
    )


async def main():
    global serving
    mode = sys.argv[1]
    settings = {"edit_interval": 0.2, "group_messages_per_minute": 900}
    if mode == "rich":
        settings["rich_messages"] = True  # the bot's default; the stacks' is entities
    if mode == "stars":
        settings |= {"star_packs": "50:50000000", "prices": "*=1000/2000"}
    async with contextlib.AsyncExitStack() as running:
        if mode == "ton":
            chain = await running.enter_async_context(FakeToncenter(api_key="probe-key"))
            settings |= {
                "ton_address": WALLET.bounceable,
                "toncenter_url": chain.url,
                "toncenter_key": "probe-key",
                "ton_packs": "1000000000:250000000",
            }
        data = Path(tempfile.mkdtemp())
        stack = await running.enter_async_context(
            running_stack(data, answer="One two three.", **settings)
        )
        if mode == "rich":
            stack.vllm.reasoning = "Counting to three."  # shown as a draft's thinking block
            stack.vllm.token_delay = 0.3  # while the answer has not begun
        responses = set(Response.__subclasses__())
        serving = True
        if mode in ("stars", "ton"):
            await purchase(stack, {"stars": "50", "ton": "GRAM"}[mode])
        else:
            await answers(stack)
        serving = False
        later = sorted(str(m) for m in set(Response.__subclasses__()) - responses)
    print(json.dumps({"built": built, "later": later}))


asyncio.run(main())
"""


@pytest.mark.parametrize("mode", ["entities", "rich", "stars", "ton"])
def test_nothing_an_answer_uses_of_aiogram_is_built_while_serving(mode: str) -> None:
    done = _fresh_python(PROBE, mode, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures == {"built": [], "later": []}


def test_a_bot_built_for_a_one_shot_command_builds_no_model_up_front() -> None:
    # ``bot reconcile`` spent ~0.65 CPU-s building what only a serving bot's answers use.
    probe = (
        "import bot, bot.telegram\n"  # first, as python -m bot: aiogram's models deferred
        "from aiogram.methods import SendMessage\n"
        "from aiogram.types import Update\n"
        "from tests.botstack import TOKEN\n"
        "bot.telegram.build_bot(TOKEN, 'http://127.0.0.1:9')\n"
        "print(SendMessage.__pydantic_complete__, Update.__pydantic_complete__)\n"
        "bot.telegram.prepare_models()\n"
        "print(SendMessage.__pydantic_complete__, Update.__pydantic_complete__)\n"
    )
    done = _fresh_python(probe, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["False False", "True True"]


def _fresh_python(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``script`` run by a fresh interpreter in the repository, its output captured."""
    return subprocess.run(  # noqa: S603 -- our own interpreter and script, no shell
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
