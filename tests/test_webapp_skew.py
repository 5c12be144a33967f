"""A Mini App question refused by a gateway whose clock disagrees goes to the next gateway.

The page seals a question in the browser to one gateway's key, so the bot cannot fail it over
as it fails its own chat over on a 400 ``stale_request`` (clock23b): it passes the refusal back.
The page re-sealed to the next gateway the bot offered only for a busy or unreachable one, so
with two gateways, one's clock ten minutes off, a question offered that one first was told "the
model server's clock disagrees" though the other would have answered. It now goes on to the
next gateway as for a busy one (the refused one ran nothing and charged nothing); the bot still
logs the skew and backs that gateway off (clock23c). Real Chromium, the page's own JavaScript.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from structlog.testing import capture_logs

from tests.harness import Clock
from tests.miniapp import init_data, page_url, webapp_stack
from tests.test_webapp_browser import ANSWER, answered, open_page, ready

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.async_api import Browser


async def test_a_gateway_whose_clock_disagrees_is_passed_over_for_the_next(
    browser: Browser, tmp_path: Path
) -> None:
    # Two questions: whichever gateway the bot's turn offers first for the first, one of them
    # is offered the skewed gateway first (the second, after a refusal, the other first).
    async with webapp_stack(tmp_path, answer=ANSWER, second_gateway=True) as stack:
        assert stack.second is not None
        page = await open_page(browser, page_url(stack.base, init_data()))
        await ready(page)
        clock = stack.gateway.gateway.clock
        assert isinstance(clock, Clock)
        clock.advance(600)  # the first gateway's clock ten minutes ahead of the bot's
        shown = []
        with capture_logs() as logs:
            for question in ("Where is the key?", "And the spare one?"):
                await answered(page, question)
                shown.append(await page.inner_text("#answer"))
        await page.context.close()
    skews = [e for e in logs if e["event"] == "relay.clock_skew"]
    assert shown == [ANSWER, ANSWER]
    assert len(stack.vllm.requests) == 2  # each answered once, by the second gateway
    assert skews  # the first gateway was offered, and refused on its clock
    assert {e["gateway"] for e in skews} == {1}
