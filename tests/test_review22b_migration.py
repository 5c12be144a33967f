"""A Forget made on a page of the older bundle, still open beside one of the new, erases on both.

The new bundle names its storage by a hash of the user id (``slotFor``); a page opened before
the upgrade keeps the old names, ``veil:history:<user id>`` and its ``:forgotten`` mark and
``:forget`` removal due. Each read only its own names: a Forget on the older page was not seen
by the new one, which went on showing the erased history, sending it to the model as context
and keeping it under the key that Forget meant to destroy; a Forget on the new page was not
seen by the older one; and moving the names when a new page opened took the mark from under
an older page still open, which then took its own history for forgotten elsewhere.

The older page is played here by a page of the same device that writes what an older bundle's
writes (the old names) and holds what it holds (its page lock), as the older bundle did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.miniapp import CHROMIUM, webapp_stack
from tests.test_miniapp22_page import OLD_SLOT as OLD  # the older bundle's names, the id in clear
from tests.test_miniapp22_page import keep_as_older_bundle
from tests.test_webapp_browser import (  # the browser tests' own steps
    ANSWER,
    FILL_STORAGE,
    HISTORY_SLOT,
    QUESTION,
    Keychain,
    answered,
    forget,
    ready,
    two_pages,
)

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.async_api import Browser, Page

    from tests.miniapp import MiniStack

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")

KEY = "veil_history_key"
# What an older page holds for its life (its ``live``): how a page of the new one tells it open.
HOLD_PAGE_LOCK = """(name) => new Promise((held) => {
  navigator.locks.request(name, () => { held(); return new Promise(() => {}); });
})"""


def sent_before(stack: MiniStack) -> list[str]:
    """The earlier turns the last question took to the model as its context."""
    return [message["content"] for message in stack.vllm.requests[-1]["messages"][:-1]]


async def forget_as_older_page(older: Page, keychain: Keychain, *, removed: bool) -> None:
    """Leave what an older bundle's Forget leaves on the device.

    Its removal due and new mark under the old names, the ciphertext gone, and (``removed``)
    the key removed from the keychain and the due with it.
    """
    await older.evaluate(
        """(old) => {
          localStorage.setItem(old + ":forget", "1");
          localStorage.setItem(old + ":forgotten", "an-older-pages-mark");
          localStorage.removeItem(old);
        }""",
        OLD,
    )
    if removed:
        keychain.values.pop(KEY)
        await older.evaluate("(old) => localStorage.removeItem(old + ':forget')", OLD)


async def test_an_older_pages_forget_erases_on_a_new_page_open_beside_it(
    browser: Browser, tmp_path: Path
) -> None:
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context, page, older = await two_pages(browser, stack, keychain)
        await answered(page, QUESTION)
        await forget_as_older_page(older, keychain, removed=True)
        # The erased exchange leaves the screen at once (the older page's storage event).
        await page.locator(".bubble").first.wait_for(state="detached", timeout=15000)
        await answered(page, "And the red one?")
        assert QUESTION not in sent_before(stack)
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble.assistant").all_inner_texts() == [ANSWER]
        assert QUESTION not in await page.inner_text("#messages")
        await context.close()


async def test_an_older_pages_forget_whose_key_is_still_due_removes_it_first(
    browser: Browser, tmp_path: Path
) -> None:
    # The keychain refused that page the removal: the key stays due, and no page keeps under
    # it (the new one kept on under it, and sent what it had kept).
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context, page, older = await two_pages(browser, stack, keychain)
        await answered(page, QUESTION)
        meant = keychain.values[KEY]
        await forget_as_older_page(older, keychain, removed=False)
        await answered(page, "And the red one?")
        assert QUESTION not in sent_before(stack)
        assert keychain.values.get(KEY) not in {None, meant}
        await context.close()


async def test_a_new_pages_forget_is_told_to_an_older_page_open_beside_it(
    browser: Browser, tmp_path: Path
) -> None:
    # The older page reads a Forget from its own mark only: it was never written, so that
    # page went on with the erased history.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context, page, older = await two_pages(browser, stack, keychain)
        await older.evaluate(HOLD_PAGE_LOCK, f"{OLD}:page:olderpage")
        await answered(page, QUESTION)
        # What the older page kept since (the same history, under the key being destroyed):
        # erased too, not moved into the new names at the next opening as a history unread.
        await older.evaluate(
            "([slot, old]) => localStorage.setItem(old, localStorage.getItem(slot))",
            [HISTORY_SLOT, OLD],
        )
        await forget(page)
        names = await older.evaluate(
            "([slot, old]) => [localStorage.getItem(slot + ':forgotten'),"
            " localStorage.getItem(old + ':forgotten')]",
            [HISTORY_SLOT, OLD],
        )
        assert names[0] is not None
        assert names[1] == names[0]
        assert await older.evaluate("(old) => localStorage.getItem(old)", OLD) is None
        await older.close()  # (its lock let go: the next opening moves the old names)
        await page.reload()
        await ready(page)
        assert "could not be read" not in await page.inner_text("#notice")
        assert await page.locator(".bubble").count() == 0
        await context.close()


async def test_moving_the_names_leaves_an_older_page_open_its_mark(
    browser: Browser, tmp_path: Path
) -> None:
    # The move removed the mark the older page read with its history: at its next look it
    # found none, took that for a Forget on another page and dropped what it showed.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context, page, older = await two_pages(browser, stack, keychain)
        await older.evaluate(HOLD_PAGE_LOCK, f"{OLD}:page:olderpage")
        await forget(page)
        await answered(page, QUESTION)
        # As the older bundle keeps it: the same values, under the id in clear.
        await keep_as_older_bundle(page)
        mark = await older.evaluate("(old) => localStorage.getItem(old + ':forgotten')", OLD)
        assert mark is not None
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble.assistant").all_inner_texts() == [ANSWER]
        assert await older.evaluate("(old) => localStorage.getItem(old + ':forgotten')", OLD) == (
            mark
        )
        await context.close()


async def test_a_history_that_fills_the_storage_is_still_read_after_the_move(
    browser: Browser, tmp_path: Path
) -> None:
    # The new name is longer than the old: a history that filled the storage (its oldest
    # exchanges gave way to fit) had no room under it, was left under the old name and not
    # read, and the next exchange found the storage full: the history was out of sight for
    # good. It is read now, and kept under the new name, the oldest exchange giving way.
    keychain = Keychain()
    questions = [f"Question number {i}?" for i in range(3)]
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context, page, other = await two_pages(browser, stack, keychain)
        await other.close()
        for question in questions[:2]:
            await answered(page, question)
        await keep_as_older_bundle(page)
        assert await page.evaluate(FILL_STORAGE) > 0
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble.user").all_inner_texts() == questions[1:2]
        assert await page.evaluate("(old) => localStorage.getItem(old)", OLD) is None
        await answered(page, questions[2])
        assert "storage is full" not in await page.inner_text("#notice")
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble.user").all_inner_texts() == questions[2:3]
        await context.close()
