"""A Mini App on a device whose clock is off says so, and still sends nothing.

The page judges a gateway's signed bundle by this device's own clock (the bot could make its
Date header say anything). A phone ten minutes slow finds a gateway's fresh key not yet valid;
one two hours fast finds it expired. Either way every bundle failed, and the page told "No
model server's keys could be verified against the pinned operator keys": a security alarm for
a clock set by hand. The page now compares with the bot's clock (its Date header) only to name
the trouble: "this device's clock and the bot's differ by about 10 min". Nothing is sent either
way. Real Chromium with its clock moved by Playwright, the page's own JavaScript.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from tests.miniapp import init_data, page_url, webapp_stack
from tests.test_webapp_browser import ANSWER, FAKE_TELEGRAM_APP, QUESTION, Keychain, ask, ready

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.async_api import Browser


@pytest.mark.parametrize(
    ("off", "told"),
    [
        (dt.timedelta(minutes=-10), "about 10 min"),  # the gateway's key not yet valid here
        (dt.timedelta(hours=2), "about 2 h"),  # its key expired here (70 min lifetime)
        (dt.timedelta(days=-3), "about 3 days"),  # a phone's date set back by hand
    ],
)
async def test_a_device_whose_clock_is_off_is_told_so_and_nothing_is_sent(
    browser: Browser, tmp_path: Path, off: dt.timedelta, told: str
) -> None:
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context = await browser.new_context(viewport={"width": 420, "height": 800})
        page = await context.new_page()
        await page.clock.set_system_time(dt.datetime.now(tz=dt.UTC) + off)
        await page.expose_function("fakeKeychain", Keychain().answer)
        await page.add_init_script(FAKE_TELEGRAM_APP)
        await page.goto(page_url(stack.base, init_data()))
        await ready(page)
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-error=device_clock]", timeout=15000)
        notice = await page.inner_text("#notice")
        await context.close()
    assert told in notice
    assert "automatic" in notice
    assert stack.vllm.requests == []  # nothing reached a model
    assert QUESTION.encode() not in stack.to_gateway.captured
