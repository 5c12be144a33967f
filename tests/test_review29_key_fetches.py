"""A gateway's 410 has the bot fetch its keys again only when that can find something new.

The gateway answers 410 to a request sealed to a key it does not hold. The relay fetched the
gateway's keys again after every such answer, whatever key the page had sealed to: a page
sealing to a key no gateway ever held had the bot fetch the gateway's bundle once a question,
for free and as often as it liked. Now the bundle is fetched again only when the page sealed to
the key the bot offers (the gateway rotated it out), and once for any number of questions
refused at once (a fetch begun after a refusal has the keys the gateway holds).
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

from tests.miniapp import USER_ID, init_data, page, webapp_stack

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp

    from tests.miniapp import MiniStack

CHAT = {"model": "veil-test", "messages": [{"role": "user", "content": "Which key is it?"}]}


def key_fetches(stack: MiniStack) -> int:
    """The bot's fetches of the gateway's keys, as the proxy between them saw them."""
    return bytes(stack.to_gateway.upstream).count(b"GET /v1/keys ")


async def refused(
    stack: MiniStack, http: aiohttp.ClientSession, headers: dict[str, str], body: bytes
) -> tuple[int, int]:
    """POST a sealed question to the relay: the bot's status and the gateway's it names."""
    async with http.post(stack.base + "api/relay", data=body, headers=headers) as reply:
        return reply.status, int((await reply.json())["error"]["gateway_status"])


async def test_questions_sealed_to_a_key_no_gateway_holds_fetch_no_keys(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path) as stack:
        mini = page(stack, http)
        assert (await mini.ask("First, an honest one.")).status == 200
        before = key_fetches(stack)
        for _ in range(5):
            headers, body, _asked = await mini.seal(CHAT, key_id=os.urandom(8))
            assert await refused(stack, http, headers, body) == (502, 410)
        assert key_fetches(stack) == before
        assert (await mini.ask("And an honest one after.")).status == 200


async def test_questions_sealed_to_a_key_rotated_out_fetch_the_keys_once(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path) as stack:
        mini = page(stack, http)
        assert (await mini.ask("First, an honest one.")).status == 200
        pages = [page(stack, http, data=init_data(USER_ID + n)) for n in range(1, 5)]
        sealed = [await each.seal(CHAT) for each in pages]  # to the key the bot offers, 4 users
        ring = stack.gateway.gateway.ring
        ring.rotate(stack.gateway.gateway.now())
        ring._keys = ring._keys[:1]  # the old key's window closes at once
        before = key_fetches(stack)
        statuses = await asyncio.gather(*(refused(stack, http, h, b) for h, b, _ in sealed))
        assert statuses == [(502, 410)] * 4
        assert key_fetches(stack) == before + 1
        assert (await mini.ask("Sealed to the new key.")).status == 200
