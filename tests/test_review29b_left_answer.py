"""A page closed while its answer had begun but no piece of it had come yet.

The bot had handed the page its reply's head (the gateway had begun), and the model was still
reading the prompt: nothing was written to the page, so nothing noticed it had gone. The user,
who reopened the page and asked again, was told "An answer is still being written" for an
answer that no page would ever show, until the model's first token came and failed to be
written. The bot now sees the page's connection closed when the next question comes, hangs up
on that answer and lets the question wait for it to be settled, as for an answer whose page
left while the gateway was still being asked.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from structlog.testing import capture_logs

from tests.books import inconsistent_users
from tests.harness import wait_until
from tests.miniapp import USER_ID, bot_address, page, raw_post, settled, webapp_stack

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp

QUESTION = "Where did I leave the spare key?"
CHAT = {"model": "veil-test", "messages": [{"role": "user", "content": QUESTION}]}
AGAIN = "And the other one?"
ANSWER = "Under the blue pot by the door."


async def test_a_question_after_closing_a_page_whose_answer_had_begun_silently_is_answered(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    def answers(request: dict[str, Any]) -> str:
        return ANSWER if request["messages"][-1]["content"] == AGAIN else "word " * 50

    async with webapp_stack(tmp_path, answer=answers) as stack:
        stack.vllm.pauses = {0}  # the model reads the prompt: no token yet
        relay = stack.veil.relay
        assert relay is not None
        mini = page(stack, http)
        headers, body, first = await mini.seal(CHAT)
        with capture_logs() as logs:
            reader, writer = await asyncio.open_connection(*bot_address(stack))
            writer.write(raw_post("/app/api/relay", headers, body))
            await writer.drain()
            async with asyncio.timeout(15):  # the bot's reply head: the answer has begun
                assert (await reader.readline()).startswith(b"HTTP/1.1 200")
            writer.close()  # the page is closed (reopened from the bot)
            await writer.wait_closed()
            second = asyncio.create_task(mini.ask(AGAIN))
            await wait_until(
                lambda: second.done() or any(e["event"] == "relay.waits_for_settling" for e in logs)
            )
            stack.vllm.pauses = set()  # the next question's answer comes at once
            stack.vllm.resume()
            asked = await second
        assert (asked.status, asked.error) == (200, {})
        assert asked.text == ANSWER
        state = await settled(stack, first.request_id)
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")
        assert not relay.busy(USER_ID)
        assert await inconsistent_users(stack.store) == []
    waited = next(e for e in logs if e["event"] == "relay.waits_for_settling")
    assert waited["cut"] == "page_gone"
