"""review29d: the gateway under a hostile network, and the relay headers' edges.

Each test runs a real gateway on 127.0.0.1 before the fake vLLM and sends sealed requests
by hand, as a relay (or something on its side of the network) would.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from multidict import CIMultiDict

from gateway.limits import Limits
from sealed.auth import CLIENT_KEY_HEADER
from sealed.encoding import b64e
from sealed.relay import (
    RELAY_KEY_HEADER,
    RELAY_TERMS_HEADER,
    RelayTerms,
    new_relay_key,
    seal_relay_key,
)
from tests.fakes.vllm import FakeVLLM
from tests.harness import post_sealed, run_gateway, seal_call

if TYPE_CHECKING:
    import aiohttp

ANSWER = " ".join(f"word{i}" for i in range(40))


@pytest.mark.parametrize("header", [RELAY_TERMS_HEADER, RELAY_KEY_HEADER])
async def test_a_relay_header_sent_twice_is_refused_whichever_comes_first(
    http: aiohttp.ClientSession, header: str
) -> None:
    # A relay's terms sent twice, 2 answer tokens and 100: the gateway held the answer to the
    # first, where a proxy on the way (or another gateway) may read the last, or join them.
    async with FakeVLLM(answer=ANSWER) as vllm, run_gateway(vllm.url) as running:
        url = f"{running.url}/v1/sealed/chat/completions"
        for flip in (False, True):
            call = seal_call(running)
            if header == RELAY_TERMS_HEADER:
                values = [
                    RelayTerms(call.request_id, "veil-test", tokens).to_header()
                    for tokens in (2, 100)
                ]
            else:
                bundle = running.gateway.ring.bundle().bundle
                values = [seal_relay_key(bundle, call.body, new_relay_key()) for _ in range(2)]
            if flip:
                values.reverse()
            headers = CIMultiDict(call.headers())
            for value in values:
                headers.add(header, value)
            reply = await post_sealed(http, running.url, call, headers=headers)
            asked = [request["max_completion_tokens"] for request in vllm.requests]
            assert (reply.status, reply.code, asked) == (400, "malformed", []), flip
            # Refused before its id is registered: the relay's honest resend is answered.
            single = {**call.headers(), header: values[0]}
            async with http.post(url, data=call.body, headers=single) as resent:
                assert resent.status == 200
                await resent.read()
            vllm.requests.clear()


async def test_the_terms_are_read_and_checked_where_the_spec_says(
    http: aiohttp.ClientSession,
) -> None:
    # docs/protocol.md, checks 10a and 14a, and the model part's lenient reading: what a third
    # party's relay (JavaScript's encodeURIComponent) or gateway needs to agree with Veil's.
    async with FakeVLLM(answer=ANSWER) as vllm, run_gateway(vllm.url) as running:
        url = f"{running.url}/v1/sealed/chat/completions"
        for model in ["veil-test", "veil%2Dtest", "veil%2dtest", "%76eil-test"]:
            call = seal_call(running)
            terms = f"{call.request_id.hex()} 3 {model}"
            headers = {**call.headers(), RELAY_TERMS_HEADER: f" {terms}\t"}  # OWS is HTTP's
            async with http.post(url, data=call.body, headers=headers) as reply:
                assert reply.status == 200, model
                await reply.read()
            assert vllm.requests[-1]["max_completion_tokens"] == 3
        # 14a comes after 14: a malformed chat declared under another id is malformed.
        call = seal_call(running, {"model": "veil-test", "messages": [{"role": "robot"}]})
        other = RelayTerms(bytes(16), "veil-test", 3).to_header()
        refused = await post_sealed(
            http, running.url, call, headers={**call.headers(), RELAY_TERMS_HEADER: other}
        )
        assert (refused.status, refused.code) == (400, "malformed")


async def test_unreadable_terms_are_refused_before_the_models_are_known(
    http: aiohttp.ClientSession,
) -> None:
    # Check 10a comes before 11: a gateway that knows no model yet still says the terms are
    # malformed (a relay's own fault), not 503 no_models (which a client fails over on).
    async with FakeVLLM(answer=ANSWER) as vllm, run_gateway(vllm.url) as running:
        running.gateway.ring.set_models((), {})
        call = seal_call(running)
        for terms, expected in [("not terms", (400, "malformed")), (None, (503, "no_models"))]:
            headers = call.headers()
            if terms is not None:
                headers[RELAY_TERMS_HEADER] = terms
            reply = await post_sealed(http, running.url, call, headers=headers)
            assert (reply.status, reply.code) == expected, terms
        assert vllm.requests == []


async def test_a_stranger_is_refused_before_its_body_is_read() -> None:
    # A stranger's megabyte was read whole (for the signature) before the gateway looked at
    # whose key it named: each of the cap's connections could hold one for the body timeout.
    # Its headers alone now get the 401; a pinned client's body is still awaited.
    stranger = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    limits = Limits(body_timeout=1.0)
    async with FakeVLLM(answer=ANSWER) as vllm, run_gateway(vllm.url, limits=limits) as running:
        host, port = running.url.removeprefix("http://").split(":")
        call = seal_call(running)
        for key, expected in [(b64e(stranger), b"401"), (None, b"408")]:
            headers = call.headers()
            if key is not None:
                headers[CLIENT_KEY_HEADER] = key
            head = [
                "POST /v1/sealed/chat/completions HTTP/1.1",
                f"Host: {host}",
                f"Content-Length: {running.gateway.max_body}",
                *(f"{name}: {value}" for name, value in headers.items()),
            ]
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + call.body[:100])
            status_line = await reader.readline()
            writer.close()
            assert status_line.split(b" ")[1] == expected, key
        assert vllm.requests == []


@pytest.mark.parametrize(
    "fields",
    [("prompt_tokens", "total_tokens"), ("total_tokens",), ()],
    ids=["no-answer", "total", "empty"],
)
async def test_a_usage_without_its_counts_is_no_usage(
    http: aiohttp.ClientSession, fields: tuple[str, ...]
) -> None:
    # A usage object that leaves out a count (a server that states some, a proxy that drops
    # some) was read as 0 of it: a whole answer signed as 0 answer tokens, not estimated.
    # It states nothing: the receipt counts the answer as the deltas relayed, estimated.
    async with FakeVLLM(answer=ANSWER) as vllm, run_gateway(vllm.url) as running:
        vllm.usage_fields = fields
        call = seal_call(running)
        reply = await post_sealed(http, running.url, call)
        assert reply.final is not None
        assert reply.final.receipt is not None
        receipt = reply.final.receipt.receipt
        assert reply.text == ANSWER
        assert (receipt.completion_tokens, receipt.estimated) == (40, True)
        assert receipt.prompt_tokens > 0
