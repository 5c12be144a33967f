"""/start, /help and /privacy."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from aiogram import F, Router
from aiogram.filters import Command, CommandStart

from services.gateways import UNREACHABLE

if TYPE_CHECKING:
    from aiogram.types import Message

    from common.texts import Texts
    from services.chat import ChatService


async def cmd_start(message: Message, texts: Texts) -> None:
    """Welcome: what Veil protects and what it does not."""
    name = message.from_user.first_name if message.from_user else ""
    await message.answer(texts("start", name=name))


async def cmd_help(message: Message, texts: Texts) -> None:
    """How to use the bot."""
    await message.answer(texts("help"))


async def cmd_privacy(message: Message, texts: Texts, chat: ChatService) -> None:
    """Who can see what, and each worker's key by fingerprint (never its address)."""
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
    await message.answer(texts("privacy", gateways="\n".join(lines)))


def build_router() -> Router:
    """A fresh router with this feature's handlers (a router can join one dispatcher)."""
    router = Router(name=__name__)
    router.message.filter(F.chat.type == "private")
    router.message.register(cmd_start, CommandStart())
    router.message.register(cmd_help, Command("help"))
    router.message.register(cmd_privacy, Command("privacy"))
    return router
