"""Review 21g: the Mini App's answer-in-flight note and its page lock, in a real Chromium.

Kept apart from ``test_webapp_browser.py`` (whose fixtures and helpers these use) as the
browser here is one started with a profile of its own: its cookie setting, a real one.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from playwright.async_api import async_playwright

from tests.miniapp import CHROMIUM, CHROMIUM_ARGS, init_data, page_url, webapp_stack
from tests.test_webapp_browser import (
    ANSWER,
    FAKE_TELEGRAM_APP,
    QUESTION,
    SLOW_ANSWER,
    Keychain,
    answered,
    ask,
    ready,
    two_pages,
)

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.async_api import Browser


async def test_a_browser_blocking_site_data_for_real_opens_the_page_and_answers(
    tmp_path: Path,
) -> None:
    # Chromium with cookies blocked (its "block all site data" setting) refuses the page both
    # its localStorage and its Web Locks: ``navigator.locks`` is there, but each request is
    # rejected with a SecurityError. The page asked for its lock of life as it opened, and
    # waited on it for ever: it never got ready, and no question could be asked (the test of
    # the blocked storage blocked ``localStorage`` alone, which no browser does).
    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    preferences = {"profile": {"default_content_setting_values": {"cookies": 2}}}
    (profile / "Default" / "Preferences").write_text(json.dumps(preferences))
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack, async_playwright() as driver:
        context = await driver.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            viewport={"width": 420, "height": 800},
        )
        try:
            await context.expose_function("fakeKeychain", keychain.answer)
            await context.add_init_script(FAKE_TELEGRAM_APP)
            page = await context.new_page()
            await page.goto(page_url(stack.base, init_data()))
            refused = await page.evaluate(
                "navigator.locks.request('probe', () => 1).then(() => '', (e) => e.name)"
            )
            assert refused == "SecurityError"  # the browser's own refusal, not the test's
            await ready(page)
            assert "does not let the page store anything" in await page.inner_text("#notice")
            await answered(page, QUESTION)
            assert await page.locator(".bubble").all_inner_texts() == [QUESTION, ANSWER]
            await page.reload()
            await ready(page)
            assert "does not let the page store anything" in await page.inner_text("#notice")
            assert "was last closed" not in await page.inner_text("#notice")
        finally:
            await context.close()
    assert keychain.values == {}  # no key made for a history that cannot be kept


async def test_an_answer_cut_by_a_reload_is_told_when_the_page_opens_offline(
    browser: Browser, tmp_path: Path
) -> None:
    # A page reloaded mid-answer (the stream seeming stuck, the network gone) opens again with
    # the network still down. The note that its answer was out was taken (removed, to be told
    # once) before the balance was fetched, and the failed fetch then wrote its own notice
    # over the one that told it: the cut answer, charged, was never told. Now it is told with
    # whatever the opening ends in, and taken only then.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=SLOW_ANSWER, token_delay=0.08) as stack:
        context, page, _ = await two_pages(browser, stack, keychain)
        await ask(page, QUESTION)
        async with asyncio.timeout(15):
            while len(await page.inner_text("#answer")) <= 20:  # noqa: ASYNC110 -- the DOM has no event here
                await asyncio.sleep(0.05)
        await page.route("**/api/account", lambda route: route.abort("internetdisconnected"))
        await page.reload()
        await ready(page)
        assert await page.get_attribute("#notice", "data-error") == "network"
        assert "was last closed" in await page.inner_text("#notice")
        await page.unroute("**/api/account")
        await page.reload()
        await ready(page)
        assert "was last closed" not in await page.inner_text("#notice")  # told once
        await context.close()
