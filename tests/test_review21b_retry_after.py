"""A Retry-After and a Veil-Accept in every form HTTP allows: the wait reaches its asker.

A model server may write its ``Retry-After`` in any HTTP-date form, and a client may send its
``Veil-Accept`` as several field lines.

RFC 9110 §5.6.7: a recipient of an HTTP-date must accept all three of its forms, asctime's
(no zone named: GMT) among them. §5.3: a list field may come as several field lines, which
mean the same as one line that joins them with commas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from multidict import CIMultiDict

from sealed.stream import ACCEPT_HEADER, MAX_RETRY_AFTER
from tests.harness import post_sealed, seal_call

if TYPE_CHECKING:
    import aiohttp

    from tests.fakes.vllm import FakeVLLM
    from tests.harness import RunningGateway


async def asked_wait(
    gateway: RunningGateway, http: aiohttp.ClientSession, accept: list[str]
) -> int | None:
    """The ``retry_after`` of the error record a client that sends ``accept`` lines reads."""
    call = seal_call(gateway)
    headers = CIMultiDict(call.headers())
    for line in accept:
        headers.add(ACCEPT_HEADER, line)
    reply = await post_sealed(http, gateway.url, call, headers=headers)
    assert reply.final is not None
    assert reply.final.error_kind == "unavailable"
    return reply.final.error_retry_after


async def test_an_asctime_retry_after_is_read_as_gmt(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    # The asctime form was dropped as a date of no known zone: the bot fell back on its own
    # short back-off and asked the busy model server again.
    vllm.fail_before_stream = (503, "loading the model")
    vllm.retry_after = "Fri Jan  1 00:00:00 2100"
    assert await asked_wait(gateway, http, ["retry_after"]) == MAX_RETRY_AFTER
    vllm.retry_after = "Sun Nov  6 08:49:37 1994"  # a date past: now
    assert await asked_wait(gateway, http, ["retry_after"]) == 0
    vllm.retry_after = "Sun, 06 Nov 1994 08:49:37 XYZ"  # a zone no one knows: still dropped
    assert await asked_wait(gateway, http, ["retry_after"]) is None


async def test_a_veil_accept_sent_as_several_field_lines_is_one_list(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    # Only the first line was read: a client whose proxy split the list (or that names
    # another value first) lost the wait it asked for.
    vllm.fail_before_stream = (429, "too many requests")
    vllm.retry_after = "42"
    assert await asked_wait(gateway, http, ["gzip-later", "retry_after"]) == 42
    assert await asked_wait(gateway, http, ["gzip-later", " RETRY_AFTER "]) == 42
    assert await asked_wait(gateway, http, ["gzip-later", "retry-after"]) is None
    assert await asked_wait(gateway, http, []) is None


async def test_a_model_server_s_date_of_fields_too_large_is_no_wait_not_a_cut_stream(
    gateway: RunningGateway, vllm: FakeVLLM, http: aiohttp.ClientSession
) -> None:
    # email.utils lets a year of twenty digits through to datetime, which overflowed: the
    # gateway cut the stream, and the bot read it truncated, not as a busy model server.
    vllm.fail_before_stream = (503, "loading the model")
    vllm.retry_after = "Tue, 14 Nov 99999999999999999999 22:15:20 GMT"
    assert await asked_wait(gateway, http, ["retry_after"]) is None
