"""/start (and its deep links: a long answer, top up), /help and /privacy."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from aiogram import F, Router

from handlers.commands import TextCommand, TextCommandStart
from handlers.replies import buy_keyboard
from services.gateways import UNREACHABLE

if TYPE_CHECKING:
    from aiogram.filters import CommandObject
    from aiogram.types import Message

    from common.texts import Texts
    from handlers.sinks import Drafts, Editors
    from services.chat import ChatService
    from services.shop import Shop
    from services.ton.shop import TonShop

LONG_ANSWER = "a_"  # the deep link's payload prefix: the token of a long answer kept in memory


async def cmd_start(message: Message, texts: Texts) -> None:
    """Welcome: what Veil protects and what it does not."""
    name = message.from_user.first_name if message.from_user else ""
    await message.answer(texts("start", name=name))


async def cmd_start_answer(
    message: Message, command: CommandObject, texts: Texts, drafts: Drafts, editors: Editors
) -> None:
    """``/start a_<token>`` (the button under a long answer elsewhere): the whole answer."""
    token = (command.args or "").removeprefix(LONG_ANSWER)
    text = editors.answers.get(token)
    if text is None:
        await message.answer(texts("long_answer_gone"))
        return
    await message.answer(texts("long_answer"))
    await drafts(message.chat.id).complete(text)


async def cmd_start_buy(
    message: Message, texts: Texts, shop: Shop, ton: TonShop | None = None
) -> None:
    """``/start buy`` (the top-up button under an inline or group notice): the packs, as /buy."""
    await message.answer(texts("buy_choose"), reply_markup=buy_keyboard(shop, texts, ton))


async def cmd_help(message: Message, texts: Texts, ton: TonShop | None = None) -> None:
    """How to use the bot; /buy's line names the currencies it sells for."""
    await message.answer(texts("help", buy=texts(_buy_line(ton))))


def _buy_line(ton: TonShop | None) -> str:
    """The key of /buy's line in /help: Stars, and Gram and USDT when sold."""
    if ton is None:
        return "help_buy"
    return "help_buy_usdt" if "usdt" in ton.assets else "help_buy_gram"


async def cmd_privacy(
    message: Message, texts: Texts, chat: ChatService, webapp_sha256: str | None = None
) -> None:
    """Who can see what, each worker's key by fingerprint (never its address), the Mini App."""
    lines = []
    for gateway in await chat.trust():
        if gateway.verified and gateway.not_after is not None:
            until = dt.datetime.fromtimestamp(gateway.not_after, tz=dt.UTC)
            lines.append(
                texts(
                    "privacy_gateway_ok",
                    index=gateway.index,
                    fingerprint=gateway.fingerprint,
                    suite=gateway.suite,
                    until=until.strftime("%Y-%m-%d %H:%M UTC"),
                )
            )
        elif gateway.problem == UNREACHABLE:
            lines.append(texts("privacy_gateway_down", index=gateway.index))
        else:
            lines.append(
                texts("privacy_gateway_bad", index=gateway.index, problem=gateway.problem or "?")
            )
    text = texts("privacy", gateways="\n".join(lines))
    if webapp_sha256 is not None:
        text += "\n\n" + texts("privacy_webapp", sha256=webapp_sha256)
    await message.answer(text)


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    long_answer = F.args.startswith(LONG_ANSWER)
    router.message.register(
        cmd_start_answer, TextCommandStart(deep_link=True, ignore_case=True, magic=long_answer)
    )
    router.message.register(
        cmd_start_buy, TextCommandStart(deep_link=True, ignore_case=True, magic=F.args == "buy")
    )
    router.message.register(cmd_start, TextCommandStart(ignore_case=True))
    router.message.register(cmd_help, TextCommand("help", ignore_case=True))
    router.message.register(cmd_privacy, TextCommand("privacy", ignore_case=True))
    return router
