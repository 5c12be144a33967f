"""A gateway's ``Retry-After`` that is no wait the RFC knows is no wait, and never an error.

``services.gateways.retry_after`` read an HTTP-date's fields with ``email.utils``, which lets a
year or an hour of twenty digits through to ``datetime``: it raised ``OverflowError``, which
neither the chat's failover nor the relay's refusal reading catches, so one header from a
gateway (or a proxy before it) ended the user's question rather than sending it to the next
gateway. And a number of seconds was read with ``float``, which also takes ``inf``, ``1e9``,
``1_000`` and digits of other scripts: RFC 9110 §10.2.3 allows decimal digits only (a
fraction, which earlier code read, is still read).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from common.waits import retry_after
from tests.failover import answer_text, first_first, two_gateways
from tests.miniapp import page, webapp_stack
from tests.test_miniapp22_retry_after import CHAT, NOW, BusyFront, through_front

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp

    from tests.harness import Clock

# An IMF-fixdate but for its year, of twenty digits: past what a C long holds.
OVERFLOWING = "Tue, 14 Nov 99999999999999999999 22:15:20 GMT"


def test_a_date_of_fields_too_large_is_no_wait() -> None:
    for value in (
        OVERFLOWING,
        "Tue, 14 Nov 2023 99999999999999999999:15:20 GMT",
        "Tue, 14 Nov 2023 22:15:20 +99999999999999999999",
    ):
        assert retry_after(value, NOW) is None, value


def test_only_decimal_seconds_are_a_number_of_seconds() -> None:
    for value in ("inf", "infinity", "1e9", "1_000", "+5", "0x10", "\u0661\u0662", "5."):
        assert retry_after(value, NOW) is None, value
    assert retry_after("1.5", NOW) is None  # RFC 9110: digits alone (the gateway's reading)
    assert retry_after("0", NOW) == 0
    assert retry_after("\t30 ", NOW) == 30


async def test_a_gateway_with_an_overflowing_date_is_failed_over(
    http: aiohttp.ClientSession, clock: Clock
) -> None:
    # The question ended in OverflowError instead of going to the next gateway.
    async with two_gateways(clock) as pair, BusyFront(pair.first.url, OVERFLOWING) as front:
        client = first_first([front.url, pair.second.url], pair.first, http, clock)  # busy first
        assert await answer_text(client) == "from the second"
        assert front.refused == 1


async def test_a_gateway_with_an_overflowing_date_is_told_to_the_page_as_busy(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The relay's reading raised: the page got the bot's 500 "something went wrong", not
    # the gateway's 503 refusal it fails over on.
    async with webapp_stack(tmp_path) as stack, BusyFront(stack.gateway.url, OVERFLOWING) as front:
        await through_front(stack, front)
        async with page(stack, http).relay(CHAT) as (response, _):
            reply = await response.json()
    assert front.refused == 1
    assert (response.status, reply["error"]["code"]) == (502, "gateway_refused")
    assert (reply["error"]["gateway_status"], reply["error"]["gateway_code"]) == (503, "busy")
    assert "retry_after" not in reply["error"]
