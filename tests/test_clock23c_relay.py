"""A Mini App question a gateway refuses for its clock: the page's user and the operator told.

The page seals to one gateway's key, stamped by the bot's clock: the relay cannot send it to
another gateway as the bot's own chat does (clock23b). It logged the refusal as any other
(``relay.refused status=400 code=stale_request``), without the skew, and left the gateway
first in line for the page's next question.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from structlog.testing import capture_logs

from tests.miniapp import hold_of, page, webapp_stack

if TYPE_CHECKING:
    from pathlib import Path

    import aiohttp

QUESTION = "What time is it where the model lives?"


async def test_a_gateways_wrong_clock_is_told_to_the_page_and_named_to_the_operator(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with webapp_stack(tmp_path) as stack:
        mini = page(stack, http)
        gateway = stack.gateway.gateway
        gateway.clock = lambda: time.time() + 600  # ten minutes fast; its key still valid
        with capture_logs() as logs:
            asked = await mini.ask(QUESTION)
        assert asked.status == 502
        assert asked.error is not None
        assert (asked.error["code"], asked.error["gateway_status"]) == ("gateway_refused", 400)
        assert asked.error["gateway_code"] == "stale_request"  # the page's own text for it
        told = [e for e in logs if e["event"] == "relay.clock_skew"]
        assert len(told) == 1
        assert (told[0]["gateway"], told[0]["allowed_s"]) == (1, 120)
        assert -602 <= told[0]["ahead_s"] <= -598  # the page's stamp, by the bot's clock
        assert not [e for e in logs if e["event"] == "relay.refused"]
        # Backed off (the page's next question is offered any other gateway first); nothing
        # ran and nothing is charged.
        pool = stack.veil.chat.inference.pool
        assert pool.gateways[0].failures == 1
        assert stack.vllm.requests == []
        state = await hold_of(stack.store, asked.request_id)
        assert state is not None
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.units) == ("released", 0)
        gateway.clock = time.time  # the clock is set: the next question is answered
        assert (await mini.ask(QUESTION)).status == 200
        assert pool.gateways[0].failures == 0
