"""The Mini App's page: a busy model server's wait told; storage names that do not name the user.

The page stored its history (and the names beside it: a Forget's mark and removal due, the
notes of questions on their way, its Web Locks) under ``veil:history:<Telegram user id>``:
anyone with the browser profile read who used Veil from the list of names. It names them by a
slow hash of the id now (``slotFor``), and moves an older bundle's names once, history kept.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

import pytest

from tests.harness import REPO
from tests.miniapp import CHROMIUM, USER_ID, init_data, node_ready, page_url, webapp_stack
from tests.test_webapp_browser import (  # the browser tests' own steps
    ANSWER,
    HISTORY_SLOT,
    QUESTION,
    Keychain,
    answered,
    ask,
    forget,
    open_page,
    ready,
    ready_page,
)

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.async_api import Browser, Page

NODE = node_ready()
OLD_SLOT = f"veil:history:{USER_ID}"  # an older bundle's name, the id in clear
NAMES = "Object.keys(localStorage)"
LOCKS = "navigator.locks.query().then((s) => [...s.held, ...s.pending].map((l) => l.name))"
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")


@pytest.mark.skipif(NODE is None, reason="needs Node.js 20 or later")
async def test_the_storage_name_is_the_same_with_or_without_webcrypto() -> None:
    # A page outside a secure context has no WebCrypto: it names the storage in script, and
    # must find the same history.
    assert NODE is not None
    script = """
        const P = globalThis.VeilProtocol;
        const names = [await P.slotFor(%d)];
        Object.defineProperty(globalThis.crypto, "subtle", { value: undefined });
        names.push(await P.slotFor(%d));
        console.log(JSON.stringify(names));
    """ % (USER_ID, USER_ID)  # noqa: UP031 -- the script's own braces
    bundle = REPO / "webapp" / "static" / "veil.js"
    process = await asyncio.create_subprocess_exec(
        NODE,
        "--input-type=module",
        "-e",
        f"await import({json.dumps(bundle.as_uri())});\n{script}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert json.loads(out) == [HISTORY_SLOT, HISTORY_SLOT]


async def keep_as_older_bundle(page: Page) -> None:
    """Move what the page keeps to the names an older bundle kept it under (the id in clear)."""
    await page.evaluate(
        """([slot, old]) => {
          for (const name of Object.keys(localStorage)) {
            if (!name.startsWith(slot)) continue;
            localStorage.setItem(old + name.slice(slot.length), localStorage.getItem(name));
            localStorage.removeItem(name);
          }
        }""",
        [HISTORY_SLOT, OLD_SLOT],
    )


async def names_of(page: Page) -> list[str]:
    """Every name the page keeps on the device: its storage's and its Web Locks'."""
    return [*await page.evaluate(NAMES), *await page.evaluate(LOCKS)]


@needs_chromium
async def test_no_name_the_page_keeps_on_the_device_holds_the_user_id(
    browser: Browser, tmp_path: Path
) -> None:
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await ready_page(browser, stack, keychain)
        await answered(page, QUESTION)
        await forget(page)  # a Forget's mark too
        await answered(page, QUESTION)
        names = await names_of(page)
        assert HISTORY_SLOT in names
        assert f"{HISTORY_SLOT}:forgotten" in names
        assert [name for name in names if str(USER_ID) in name] == []
        await page.context.close()


@needs_chromium
async def test_a_history_kept_under_the_user_id_is_moved_once_and_read(
    browser: Browser, tmp_path: Path
) -> None:
    # What an older bundle kept (the ciphertext, the mark of the Forget it follows, a note of a
    # question a page closed while it was on its way) is read from the old names once, kept
    # under the new ones, and gone from the old.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await ready_page(browser, stack, keychain)
        await forget(page)
        await answered(page, QUESTION)
        # As the older bundle left it: the same values, under the id in clear.
        await keep_as_older_bundle(page)
        await page.evaluate(
            "(old) => localStorage.setItem(old + ':asking:closedpage', '1')", OLD_SLOT
        )
        assert set(await page.evaluate(NAMES)) >= {OLD_SLOT, f"{OLD_SLOT}:forgotten"}
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble.assistant").all_inner_texts() == [ANSWER]
        assert "An answer was still coming when this page was last closed" in (
            await page.inner_text("#notice")
        )
        names = await names_of(page)
        assert [name for name in names if str(USER_ID) in name] == []
        assert {HISTORY_SLOT, f"{HISTORY_SLOT}:forgotten"} <= set(names)
        # Once: the next exchange is kept beside it, and read again after a reload.
        await answered(page, "And the red one?")
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble.assistant").all_inner_texts() == [ANSWER, ANSWER]
        assert stack.vllm.requests[-1]["messages"][-3]["content"] == QUESTION  # its context
        await page.context.close()


@needs_chromium
async def test_a_busy_model_servers_wait_is_told_in_the_users_language(
    browser: Browser, tmp_path: Path
) -> None:
    # The bot did not ask for the model server's wait, nor could the page read one: the user
    # heard "try again in a moment", not when.
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await open_page(browser, page_url(stack.base, init_data(language="kk")))
        await ready(page)
        stack.vllm.fail_before_stream = (503, "loading the model")
        stack.vllm.retry_after = "42"
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-error=unavailable]", timeout=15000)
        assert await page.inner_text("#notice") == (
            "Модель сервері қазір бос емес. 42 с кейін қайталап көріңіз."  # noqa: RUF001 -- Kazakh
        )
        stack.vllm.fail_before_stream = None
        await answered(page, QUESTION)
        assert await page.inner_text("#answer") == ANSWER
        await page.context.close()
