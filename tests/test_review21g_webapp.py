"""Review 21g: the Mini App's answer-in-flight note and its page lock, in a real Chromium.

Kept apart from ``test_webapp_browser.py`` (whose fixtures and helpers these use) as the
browser here is one started with a profile of its own: its cookie setting, a real one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from playwright.async_api import async_playwright

from tests.miniapp import init_data, page_url, webapp_stack
from tests.test_webapp_browser import (
    ANSWER,
    CHROMIUM,
    CHROMIUM_ARGS,
    FAKE_TELEGRAM_APP,
    QUESTION,
    Keychain,
    answered,
    ready,
)

if TYPE_CHECKING:
    from pathlib import Path


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
