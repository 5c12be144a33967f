"""A page that declares one thing to the bot and seals another is not served past its hold.

The relay holds credit for what the page declares (its request id, model and answer tokens)
and bills from the gateway's receipt, which must name the declared id and model; without one
it charges the hold, "the most it could have cost". That holds only if the gateway runs no
more than the page declared: the bot tells it the declaration (``Veil-Relay-Terms``), and the
gateway refuses a sealed question that names another request id or model and clamps its
answer to the declared tokens. Each test plays a dishonest page over real HTTP through the
bot to a real gateway and the fake vLLM, and reads the ledger back.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING
from urllib.parse import quote

from structlog.testing import capture_logs

from sealed.relay import RELAY_TERMS_HEADER, RelayTerms
from tests.books import inconsistent_users
from tests.fakes.vllm import FakeVLLM
from tests.harness import run_gateway, seal_call
from tests.miniapp import hold_of, page, read_to_break, settled, webapp_stack

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp

QUESTION = "Write me the whole essay, please."
ANSWER = " ".join(f"word{i}" for i in range(60))


def chat(model: str = "veil-test") -> dict[str, object]:
    """The question the dishonest page seals: its answer as long as the gateway allows."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_completion_tokens": 200,
    }


async def test_a_page_declaring_another_request_id_gets_no_answer_and_no_charge(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The page seals request id A and declares B: the gateway's receipt names A, which the bot
    # cannot bill by, and the late receipt under B does not exist, so the bot charged the hold
    # (one answer token declared) for a whole answer.
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        mini = page(stack, http)
        headers, body, _ = await mini.seal(chat(), max_tokens=200)
        declared = secrets.token_bytes(16)
        headers = {**headers, "Veil-Request-Id": declared.hex(), "Veil-Max-Tokens": "1"}
        async with http.post(mini.base + "api/relay", data=body, headers=headers) as reply:
            status, raw = reply.status, await reply.read()
        state = await settled(stack, declared)
        assert stack.vllm.requests == [], (status, len(raw), state.charge)
        assert status == 502
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.units) == ("released", 0)
        assert await inconsistent_users(stack.store) == []


async def test_a_page_declaring_a_cheaper_model_gets_no_answer_and_no_charge(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # Both models are served; the page declares the cheap one and seals the dear one.
    async with webapp_stack(
        tmp_path,
        answer=ANSWER,
        models=("veil-test", "veil-dear"),
        prices="veil-dear=2000/6000,*=20/60",
    ) as stack:
        mini = page(stack, http)
        headers, body, asked = await mini.seal(chat("veil-dear"))
        headers = {**headers, "Veil-Model": quote("veil-test", safe="")}
        async with http.post(mini.base + "api/relay", data=body, headers=headers) as reply:
            status, raw = reply.status, await reply.read()
        state = await settled(stack, asked.request_id)
        assert stack.vllm.requests == [], (status, len(raw), state.charge)
        assert status == 502
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.units) == ("released", 0)


async def test_a_page_that_seals_more_tokens_than_it_declared_gets_what_it_declared(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The page declares (and is held for) 2 answer tokens, seals 200 and a receipt proof the
    # gateway will not take, and hangs up before the final record: without a receipt the bot
    # charges the hold, so the model must not have been asked for more than it holds.
    async with webapp_stack(tmp_path, answer=ANSWER, token_delay=0.02) as stack:
        mini = page(stack, http)
        headers, body, asked = await mini.seal(chat(), max_tokens=200, receipt_proof=bytes(32))
        headers = {**headers, "Veil-Max-Tokens": "2"}
        async with http.post(mini.base + "api/relay", data=body, headers=headers) as response:
            await read_to_break(response)
        state = await settled(stack, asked.request_id)
        assert state.hold.max_completion_tokens == 2
        asked_for = stack.vllm.requests[0]["max_completion_tokens"]
        assert asked_for <= state.hold.max_completion_tokens, asked_for
        assert state.charge is not None
        assert state.charge.completion_tokens <= state.hold.max_completion_tokens


async def test_an_honest_page_is_answered_whole_under_the_terms(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    with capture_logs() as logs:
        async with webapp_stack(tmp_path, answer=ANSWER) as stack:
            mini = page(stack, http)
            asked = await mini.ask(QUESTION)
            assert asked.status == 200, asked.error
            assert asked.text == ANSWER
            state = await hold_of(stack.store, asked.request_id)
            assert state is not None
            assert state.charge is not None
            assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "complete")
            assert (
                stack.vllm.requests[0]["max_completion_tokens"] == state.hold.max_completion_tokens
            )
    assert not [e for e in logs if e["event"] == "gateway.refused"]


async def test_the_gateway_refuses_terms_it_cannot_read_and_registers_no_id(
    http: aiohttp.ClientSession,
) -> None:
    # Refused terms (unreadable, or another model's) leave the request id free: the relay's
    # honest resend of the same bytes is answered.
    async with FakeVLLM(answer=ANSWER) as vllm, run_gateway(vllm.url) as running:
        call = seal_call(running)
        url = f"{running.url}/v1/sealed/chat/completions"
        honest = RelayTerms(call.request_id, "veil-test", 5).to_header()
        for terms, code in [
            ("not terms", "malformed"),
            (honest.replace(" ", "  ", 1), "malformed"),
            (honest.replace(" 5 ", " 0 "), "malformed"),
            (honest.replace("veil-test", "veil-test%FF"), "malformed"),
            (honest.replace("veil-test", "veil-other"), "terms_mismatch"),
        ]:
            headers = {**call.headers(), RELAY_TERMS_HEADER: terms}
            async with http.post(url, data=call.body, headers=headers) as reply:
                refused = await reply.json()
            assert (reply.status, refused["error"]["code"]) == (400, code), terms
        assert vllm.requests == []
        headers = {**call.headers(), RELAY_TERMS_HEADER: honest}
        async with http.post(url, data=call.body, headers=headers) as reply:
            assert reply.status == 200
            await reply.read()
        assert vllm.requests[0]["max_completion_tokens"] == 5
