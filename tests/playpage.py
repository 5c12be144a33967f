"""The playground's page actions over HTTP, as the page posts them, for end-to-end tests."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from common.container import PLAYGROUND_TON_ADDRESS

if TYPE_CHECKING:
    from collections.abc import Callable

    import aiohttp


async def playground_message(
    base: str, http: aiohttp.ClientSession, found: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Wait for a bot's message in the playground's private chat that ``found`` accepts."""
    async with asyncio.timeout(30):
        while True:
            async with http.get(f"{base}/ui/state") as reply:
                state = await reply.json()
            for message in state["messages"]:
                if not message["outgoing"] and found(message):
                    return dict(message)
            await asyncio.sleep(0.1)


async def playground_replies(base: str, http: aiohttp.ClientSession) -> list[str]:
    """Wait for the bot's first message in the playground's private chat."""
    return [str((await playground_message(base, http, lambda _: True))["html"])]


async def pay_gram_in_the_playground(base: str, http: aiohttp.ClientSession) -> str:
    """/buy, the first Gram pack, "simulate payment": the text of the credited message."""
    async with http.post(f"{base}/ui/send", json={"text": "/buy"}) as reply:
        assert reply.status == 200

    def gram_pack(message: dict[str, Any]) -> bool:
        return any(b["text"].startswith("1 GRAM") for row in message["buttons"] for b in row)

    menu = await playground_message(base, http, gram_pack)
    (button,) = [b for row in menu["buttons"] for b in row if b["text"].startswith("1 GRAM")]
    press = {"message_id": menu["message_id"], "data": button["callback_data"]}
    async with http.post(f"{base}/ui/press", json=press) as reply:
        assert reply.status == 200
    invoice = await playground_message(base, http, lambda m: "ton_invoice" in m)
    assert invoice["ton_invoice"]["amount"] == 1_000_000_000
    assert PLAYGROUND_TON_ADDRESS in invoice["html"]
    pay = {"message_id": invoice["message_id"]}
    async with http.post(f"{base}/ui/ton_pay", json=pay) as reply:
        assert reply.status == 200
    credited = await playground_message(base, http, lambda m: "Received 1 GRAM" in m["html"])
    return str(credited["html"])
