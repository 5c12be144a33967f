"""The Mini App end to end in a real browser: Debian's Chromium, driven by Playwright.

The page is served by the bot's own web server (through a recording proxy) and opened the way
Telegram opens it: launch parameters with a signed ``initData`` in the URL fragment. A fake
Telegram app answers the page's bridge events (``TelegramWebviewProxy`` in, ``receiveEvent``
out) with a keychain held here in the test, as the device's would be. The question is typed,
sealed in the page, answered by the fake vLLM through a real gateway, and neither the wire on
either side of the bot nor its logs or files ever hold the question or the answer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ed25519
from structlog.testing import capture_logs

from sealed.encoding import b64e
from sealed.suites import Suite
from services.audit import Auditor
from services.tokens import prompt_tokens
from tests.books import inconsistent_users
from tests.botstack import TOKEN, bot_env, process_stack
from tests.fakes.telegram import FakeTelegram
from tests.fakes.vllm import FakeVLLM
from tests.harness import (
    REPO,
    Clock,
    ManagedProcess,
    free_port,
    new_operator_key,
    run_gateway,
    wait_until,
)
from tests.miniapp import (
    CHROMIUM,
    USER_ID,
    chromium,
    hold_of,
    init_data,
    page_url,
    settled,
    webapp_stack,
)
from tests.test_gateway_restart import start_gateway

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from pathlib import Path

    from playwright.async_api import Browser, BrowserContext, Page, Route

    from tests.miniapp import MiniStack

QUESTION = "Where did I hide the spare key to the blue shed?"
ANSWER = "Under the third flowerpot, next to the lavender."
SLOW_ANSWER = " ".join(f"piece{i}" for i in range(80))
# The page names its storage by a slow hash of the user id (webapp/src/history.js, slotFor).
HISTORY_SLOT = (
    "veil:history:"
    + hashlib.pbkdf2_hmac(
        "sha256", str(USER_ID).encode(), b"veil/history-slot/v1", 100_000, 16
    ).hex()
)

# One Chromium for the file, each test in contexts of its own (their storage their own too),
# closed after it: a Chromium launched for each of its 81 tests took ~1.5 CPU-s and ~1 s
# each, in the suite's longest file. A fixture that outlives a test needs an event loop that
# does too: the file's tests run on the module's loop.
pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium"),
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    """The file's Chromium."""
    async with chromium() as launched:
        yield launched


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def closed_contexts(browser: Browser) -> AsyncIterator[None]:
    """Each test's browser contexts, and their pages, closed once it ends."""
    yield
    for context in browser.contexts:
        await context.close()


# The Telegram app's side of the bridge, as the Android app does it: the page posts events to
# TelegramWebviewProxy; the app answers through window.Telegram.WebView.receiveEvent.
FAKE_TELEGRAM_APP = """
window.tgEvents = [];
window.TelegramWebviewProxy = {
  postEvent(type, data) {
    const payload = data ? JSON.parse(data) : null;
    window.tgEvents.push([type, payload]);
    if (type.startsWith("web_app_secure_storage_")) {
      window.fakeKeychain(type, payload).then(([event, reply]) =>
        window.Telegram.WebView.receiveEvent(event, reply));
    }
  },
};
"""


class Keychain:
    """The device keychain SecureStorage keeps its values in: outside the page, as on a phone."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        # Set ``hold``, and a removal waits for it (``removing`` is set meanwhile): a keychain
        # that takes its time, as a phone's may.
        self.hold: asyncio.Event | None = None
        self.removing = asyncio.Event()
        self.removals_held = 0  # how many removals have waited for ``hold``
        # Set ``refuse_removal``, and a removal fails as a keychain that cannot answer does.
        self.refuse_removal = False
        # Set ``hold_reads`` and ``reads_to_hold``, and that many reads wait for it (as a
        # keychain slow to answer does); ``reads_waiting`` counts them.
        self.hold_reads: asyncio.Event | None = None
        self.reads_to_hold = 0
        self.reads_waiting = 0
        # Set ``unsupported``, and every request fails as in an app without a keychain (Telegram
        # Desktop, the web apps: Bot API 9.0+ all the same), ``UNSUPPORTED``.
        self.unsupported = False

    async def answer(self, method: str, payload: dict[str, Any]) -> list[Any]:
        """Answer one SecureStorage request event."""
        req_id = payload["req_id"]
        if self.unsupported:
            return ["secure_storage_failed", {"req_id": req_id, "error": "UNSUPPORTED"}]
        if method == "web_app_secure_storage_save_key" and payload["value"] is None and self.hold:
            self.removing.set()
            self.removals_held += 1
            await self.hold.wait()
        removal = method == "web_app_secure_storage_save_key" and payload["value"] is None
        if removal and self.refuse_removal:
            return ["secure_storage_failed", {"req_id": req_id, "error": "STORAGE_KEY_FAILED"}]
        if method == "web_app_secure_storage_save_key":
            if payload["value"] is None:
                self.values.pop(payload["key"], None)
            else:
                self.values[payload["key"]] = payload["value"]
            return ["secure_storage_key_saved", {"req_id": req_id}]
        if method == "web_app_secure_storage_get_key":
            if self.hold_reads and self.reads_to_hold > 0:
                self.reads_to_hold -= 1
                self.reads_waiting += 1
                await self.hold_reads.wait()
            value = self.values.get(payload["key"])
            return ["secure_storage_key_received", {"req_id": req_id, "value": value}]
        return ["secure_storage_failed", {"req_id": req_id, "error": "UNSUPPORTED"}]


async def open_page(browser: Browser, url: str, keychain: Keychain | None = None) -> Page:
    """A new tab in the fake Telegram app, opened at ``url``."""
    context = await browser.new_context(viewport={"width": 420, "height": 800})
    page = await context.new_page()
    await page.expose_function("fakeKeychain", (keychain or Keychain()).answer)
    await page.add_init_script(FAKE_TELEGRAM_APP)
    await page.goto(url)
    return page


async def two_pages(
    browser: Browser, stack: MiniStack, keychain: Keychain, script: str = ""
) -> tuple[BrowserContext, Page, Page]:
    """Two pages of one user on one device (one storage, one keychain), both opened and ready.

    ``script`` runs in each before the page's own (the device's browser as it may be).
    """
    context = await browser.new_context(viewport={"width": 420, "height": 800})
    await context.expose_function("fakeKeychain", keychain.answer)
    await context.add_init_script(FAKE_TELEGRAM_APP + script)
    first, second = await context.new_page(), await context.new_page()
    for page in (first, second):
        await page.goto(page_url(stack.base, init_data()))
        await ready(page)
    return context, first, second


async def ready(page: Page) -> None:
    await page.wait_for_selector("body[data-ready=true]", timeout=15000)


async def seen_by_both(writer: Page, reader: Page) -> None:
    """Wait until ``writer`` has kept its exchange and ``reader`` reads the history it wrote.

    ``answered`` returns once the writer has kept the exchange (its send button back); another
    page of the device reads that write only a moment later (each renderer holds its copy of
    the storage, told of the other's writes). A page reloaded before then read the history as
    it was before the write.
    """
    await writer.wait_for_selector("#send[data-state=send]", timeout=15000)
    read = f"localStorage.getItem({HISTORY_SLOT!r})"
    async with asyncio.timeout(15):
        while await reader.evaluate(read) != await writer.evaluate(read):  # noqa: ASYNC110 -- polled from outside the pages
            await asyncio.sleep(0.02)


async def ready_page(browser: Browser, stack: MiniStack, keychain: Keychain) -> Page:
    """A new page of the user in the fake Telegram app, opened and ready."""
    page = await open_page(browser, page_url(stack.base, init_data()), keychain)
    await ready(page)
    return page


async def forget(page: Page) -> None:
    """Forget the history from the page's About panel; wait until the page says it is erased."""
    await page.click("#about-title")
    await page.click("#forget")
    await page.wait_for_selector("#notice[data-kind=forgotten]")


async def ask(page: Page, question: str) -> None:
    await page.fill("#question", question)
    await page.click("#send")


async def answered(page: Page, question: str) -> None:
    """Ask ``question`` in ``page``; wait until its answer is complete and its exchange kept.

    The page keeps the exchange after it tells the answer complete, and sets its send button
    back once it has: a reload before then cut the keeping short.
    """
    await ask(page, question)
    await page.wait_for_selector("#notice[data-status=complete]", timeout=15000)
    await page.wait_for_selector("#send[data-state=send]", timeout=15000)


def assert_unread(stack: MiniStack, logs: list[Any], *texts: str) -> None:
    dumped = json.dumps(logs, default=str)
    stored = stack.stored_bytes()
    told = json.dumps([call.params for call in stack.telegram.calls], ensure_ascii=False)
    for text in texts:
        for piece in (text, text[:12], text[-12:]):
            assert piece.encode() not in stack.to_bot.captured, piece
            assert piece.encode() not in stack.to_gateway.captured, piece
            assert piece.encode() not in stored, piece
            assert piece not in dumped, piece
            assert piece not in told, piece  # nor anything the bot sent to Telegram


async def test_a_question_typed_in_the_page_is_answered_sealed_end_to_end(
    browser: Browser, tmp_path: Path
) -> None:
    keychain = Keychain()
    with capture_logs() as logs:
        async with webapp_stack(tmp_path, answer=ANSWER) as stack:
            page = await ready_page(browser, stack, keychain)
            # Telegram's look and the bridge: theme colours, ready and expand, the balance.
            assert (
                await page.evaluate(
                    "getComputedStyle(document.documentElement).getPropertyValue('--tg-theme-bg-color')"
                )
                == "#17212b"
            )
            events = [event for event, _ in await page.evaluate("window.tgEvents")]
            assert events[:2] == ["web_app_ready", "web_app_expand"]
            assert "1000000" in await page.inner_text("#balance")
            assert await page.input_value("#model") == "veil-test"
            assert await page.get_attribute("#notice", "data-kind") == "history"

            await answered(page, QUESTION)
            assert await page.inner_text("#answer") == ANSWER
            assert "verified" in await page.inner_text("#notice")
            artifacts = REPO / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            await page.click("#about-title")
            await page.screenshot(path=str(artifacts / "miniapp.png"))
            await page.click("#about-title")
            # The receipt settled the hold the bot made for the sealed request.
            charges = await stack.store.read(
                lambda db: db.execute("SELECT request_id FROM holds").fetchall()
            )
            assert len(charges) == 1
            state = await hold_of(stack.store, bytes.fromhex(charges[0][0]))
            assert state is not None
            assert state.charge is not None
            assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "complete")
            assert (await Auditor(stack.store, [stack.gateway.verify_key]).run()).ok

            # History stays on the device: its key in the keychain, ciphertext in the page's
            # storage, readable again after a reload, and never the text in clear.
            assert "veil_history_key" in keychain.values
            stored = await page.evaluate(f"localStorage.getItem({HISTORY_SLOT!r})")
            assert stored
            assert QUESTION not in stored
            assert ANSWER not in stored
            await page.reload()
            await ready(page)
            bubbles = await page.locator(".bubble.assistant").all_inner_texts()
            assert bubbles == [ANSWER]

            # Forget destroys the key and the ciphertext.
            old_key = keychain.values["veil_history_key"]
            await forget(page)
            assert await page.evaluate(f"localStorage.getItem({HISTORY_SLOT!r})") is None
            assert keychain.values.get("veil_history_key") != old_key
            assert await page.locator(".bubble").count() == 0
            assert stack.vllm.requests[0]["messages"][-1]["content"] == QUESTION
            await page.context.close()
    assert_unread(stack, logs, QUESTION, ANSWER)


async def test_a_reasoning_models_thinking_is_shown_folded_apart_and_never_kept(
    browser: Browser, tmp_path: Path
) -> None:
    thinking = "They ask about the shed key; the flowerpot is the answer."
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        stack.vllm.reasoning = thinking
        page = await answered_page(browser, stack, keychain)
        # The thinking sits folded just before the answer's bubble, never inside the answer.
        assert await page.inner_text("#answer") == ANSWER
        folded = page.locator("details.thinking")
        assert await folded.count() == 1
        assert await folded.get_attribute("open") is None
        assert (
            await page.evaluate("document.querySelector('details.thinking').nextElementSibling.id")
            == "answer"
        )
        assert await page.inner_text("details.thinking summary") == "💭 Thinking"
        assert (
            await page.evaluate("document.querySelector('details.thinking > div').textContent")
            == thinking
        )
        # The device history keeps the answer only: after a reload the thinking is gone.
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble.assistant").all_inner_texts() == [ANSWER]
        assert await page.locator("details.thinking").count() == 0
        await page.context.close()


async def test_thinking_is_shown_without_the_blanks_the_chat_takes_off_it(
    browser: Browser, tmp_path: Path
) -> None:
    # The page took the blanks off the thinking with JavaScript's trim(), which the chat's
    # str.strip() does not match: U+001C..U+001F are blanks to the chat, not to trim().
    # Thinking of such blanks alone was folded as thinking to show, and blanks around
    # thinking were shown with it. The page takes off what the chat does now.
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        stack.vllm.reasoning = "\x1c\x85\x1f"
        page = await answered_page(browser, stack, Keychain())
        assert await page.inner_text("#answer") == ANSWER
        assert await page.locator("details.thinking").count() == 0
        await page.context.close()
    thinking = "The shed, the key."
    (tmp_path / "again").mkdir()
    async with webapp_stack(tmp_path / "again", answer=ANSWER) as stack:
        stack.vllm.reasoning = f"\x85\x1c{thinking}\x1d\x85"
        page = await answered_page(browser, stack, Keychain())
        assert (
            await page.evaluate("document.querySelector('details.thinking > div').textContent")
            == thinking
        )
        await page.context.close()


async def test_thinking_the_model_wrote_into_its_text_is_folded_apart_and_never_kept(
    browser: Browser, tmp_path: Path
) -> None:
    # A model served without a reasoning parser writes <think>…</think> into the answer's
    # text: the page showed the tags and the monologue as the answer, kept them in the device
    # history and sent them back to the model. It reads them as the chat does now.
    thinking = "They ask about the shed key; the flowerpot is the answer."
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=f"<think>\n{thinking}\n</think>\n\n{ANSWER}") as stack:
        page = await answered_page(browser, stack, keychain)
        assert await page.inner_text("#answer") == ANSWER
        assert await page.locator("details.thinking").count() == 1
        assert await page.locator("details.thinking").get_attribute("open") is None
        assert (
            await page.evaluate("document.querySelector('details.thinking > div').textContent")
            == thinking  # without the blanks around it, as the chat shows it
        )
        # The next question's context holds the answer alone, as it was shown.
        await answered(page, "And the red shed?")
        sent = [m["content"] for m in stack.vllm.requests[1]["messages"]]
        assert sent == [QUESTION, ANSWER, "And the red shed?"]
        # The device history keeps the answers only: after a reload no thinking, no tags.
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble.assistant").all_inner_texts() == [ANSWER, ANSWER]
        assert await page.locator("details.thinking").count() == 0
        await page.context.close()


async def test_an_empty_thinking_block_is_no_thinking_to_show(
    browser: Browser, tmp_path: Path
) -> None:
    # Qwen3 told not to think still opens its answer with "<think>\n\n</think>\n\n": the page
    # folded a "Thinking" over blanks. As in the chat, blanks alone are no thinking to show.
    async with webapp_stack(tmp_path, answer=f"<think>\n\n</think>\n\n{ANSWER}") as stack:
        page = await answered_page(browser, stack, Keychain())
        assert await page.inner_text("#answer") == ANSWER
        assert await page.locator("details.thinking").count() == 0
        await page.context.close()


async def test_an_answer_that_is_only_thinking_is_told_with_its_charge_and_the_question_given_back(
    browser: Browser, tmp_path: Path
) -> None:
    # The model ran out of room while thinking (its <think> never closed): no answer. The page
    # showed the tags and the thinking as the answer, under a plain receipt line, and kept them.
    # It says now, as the chat does, that the model could not answer, and what the receipt
    # billed (the bot settles the page's receipt, thinking and all); nothing is kept.
    thinking = "Let me think about the shed, the key, the flowerpots and"
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=f"<think>{thinking}") as stack:
        page = await ready_page(browser, stack, keychain)
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-status=thought_only]", timeout=15000)
        ((request_id,),) = await stack.store.read(
            lambda db: db.execute("SELECT request_id FROM holds").fetchall()
        )
        state = await settled(stack, bytes.fromhex(request_id))
        assert state.charge is not None
        assert state.charge.outcome == "settled"
        assert state.charge.completion_tokens > 0
        notice = await page.inner_text("#notice")
        assert notice == (
            "The model could not answer this time: it only thought and wrote no answer. The signed"
            f" receipt's {state.charge.prompt_tokens} + {state.charge.completion_tokens} tokens"
            " were billed, its thinking's included."
            " Your question is back in the input to send again."
        )
        assert await page.input_value("#question") == QUESTION
        assert await page.locator("#answer").count() == 0
        assert (
            await page.evaluate("document.querySelector('details.thinking > div').textContent")
            == thinking
        )
        assert keychain.values  # the history was open, and kept nothing
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble").count() == 0
        await page.context.close()


async def test_a_parsers_thinking_followed_by_blanks_alone_is_told_as_only_thinking(
    browser: Browser, tmp_path: Path
) -> None:
    # A reasoning parser's thinking, then an answer of blanks: no answer, told as one that is
    # only thinking, with no bubble of blanks left under the fold and nothing kept.
    async with webapp_stack(tmp_path, answer="\n\n") as stack:
        stack.vllm.reasoning = "The shed, the key, and"
        page = await open_page(browser, page_url(stack.base, init_data()), Keychain())
        await ready(page)
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-status=thought_only]", timeout=15000)
        assert await page.locator(".bubble.assistant").count() == 1  # the fold alone
        assert await page.locator("details.thinking").count() == 1
        assert await page.input_value("#question") == QUESTION
        await page.context.close()


async def test_the_page_sends_only_the_history_that_fits_the_window_the_bundle_states(
    browser: Browser, tmp_path: Path
) -> None:
    long_answer = " ".join(f"wave{i}" for i in range(80))  # 480 bytes: over half the window

    def answer(request: dict[str, Any]) -> str:
        return (
            long_answer
            if request["messages"][-1]["content"] == "Tell me about the sea."
            else "Yes."
        )

    async with webapp_stack(tmp_path, answer=answer, max_model_len=768) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()))
        await ready(page)
        for question in ("Tell me about the sea.", "Short?", "And?"):
            await answered(page, question)
        await page.context.close()
    first, second, third = (
        [m["content"] for m in request["messages"]] for request in stack.vllm.requests
    )
    # A 768-token window, half of it kept for the answer: beside a question, the long first
    # exchange (570 tokens by the byte ceilings) no longer fits and is left out; the short
    # second one fits and goes along.
    assert first == ["Tell me about the sea."]
    assert second == ["Short?"]
    assert third == ["Short?", "Yes.", "And?"]
    for request in stack.vllm.requests:
        assert prompt_tokens(request["messages"]) + request["max_completion_tokens"] <= 768


async def test_stop_in_the_page_ends_the_answer_and_is_metered(
    browser: Browser, tmp_path: Path
) -> None:
    async with webapp_stack(tmp_path, answer=SLOW_ANSWER, token_delay=0.08) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()))
        await ready(page)
        await ask(page, QUESTION)
        async with asyncio.timeout(15):  # (wait_for_function evaluates a string: the CSP says no)
            while len(await page.inner_text("#answer")) <= 20:  # noqa: ASYNC110 -- the DOM has no event here
                await asyncio.sleep(0.05)
        assert await page.get_attribute("#send", "data-state") == "stop"
        await page.click("#send")
        await page.wait_for_selector("#notice[data-status=stopped]", timeout=15000)
        shown = await page.inner_text("#answer")
        assert SLOW_ANSWER.startswith(shown)
        assert len(shown) < len(SLOW_ANSWER)
        rows = await stack.store.read(
            lambda db: db.execute("SELECT request_id FROM holds").fetchall()
        )
        state = await hold_of(stack.store, bytes.fromhex(rows[0][0]))
        assert state is not None
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")
        assert 0 < state.charge.completion_tokens < 80
        await page.context.close()


async def test_a_stop_the_network_does_not_deliver_still_ends_the_answer_as_stopped(
    browser: Browser, tmp_path: Path
) -> None:
    # A proxy answers the cancel for the gateway: the bot hangs up on the answer instead, and
    # the page's stream ends with no receipt. The user pressed Stop: the answer is stopped, not
    # "cut off on the way", and what was shown is kept like any stopped answer's.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=SLOW_ANSWER, token_delay=0.08, tamper=True) as stack:
        stack.tampering.refusal = ("/v1/sealed/cancel", 502, "text/html", b"<h1>Bad Gateway</h1>")
        page = await ready_page(browser, stack, keychain)
        await ask(page, QUESTION)
        async with asyncio.timeout(15):
            while len(await page.inner_text("#answer")) <= 20:  # noqa: ASYNC110 -- the DOM has no event here
                await asyncio.sleep(0.05)
        await page.click("#send")
        await page.wait_for_selector("#notice[data-status=stopped]", timeout=15000)
        assert await page.get_attribute("#notice", "data-error") is None
        assert await page.inner_text("#notice") == "Stopped."
        shown = await page.inner_text("#answer")
        assert SLOW_ANSWER.startswith(shown)
        assert len(shown) < len(SLOW_ANSWER)
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble.assistant").all_inner_texts() == [shown]
        await page.context.close()
        rows = await stack.store.read(
            lambda db: db.execute("SELECT request_id FROM holds").fetchall()
        )
        state = await hold_of(stack.store, bytes.fromhex(rows[0][0]))
        assert state is not None
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")


async def test_a_stop_that_overtakes_its_question_on_the_way_still_stops_the_answer(
    browser: Browser, tmp_path: Path
) -> None:
    # On a slow network the sealed question can still be on its way to the bot when Stop is
    # pressed, and the stop, on a connection of its own, gets there first: the bot has no such
    # answer yet (404). The answer that then starts must still be stopped, not run and be
    # charged in full.
    async with webapp_stack(tmp_path, answer=SLOW_ANSWER, token_delay=0.08) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()))
        await ready(page)
        stack.to_bot.hold = b"POST /app/api/relay"
        await ask(page, QUESTION)
        async with asyncio.timeout(15):
            await stack.to_bot.holding.wait()
        await page.click("#send")
        async with asyncio.timeout(15):
            while b"not_running" not in stack.to_bot.downstream:  # noqa: ASYNC110 -- the proxy has no event here
                await asyncio.sleep(0.05)
        stack.to_bot.release.set()
        await page.wait_for_selector("#notice[data-status=stopped]", timeout=15000)
        for shown in await page.locator(".bubble.assistant").all_inner_texts():
            assert SLOW_ANSWER.startswith(shown)
            assert len(shown) < len(SLOW_ANSWER)
        rows = await stack.store.read(
            lambda db: db.execute("SELECT request_id FROM holds").fetchall()
        )
        state = await settled(stack, bytes.fromhex(rows[0][0]))
        assert state.charge is not None
        assert state.charge.receipt_status == "stopped"
        assert state.charge.completion_tokens < 80
        await page.context.close()


async def test_a_stop_that_overtakes_its_question_is_honoured_while_the_gateway_never_begins(
    browser: Browser, tmp_path: Path
) -> None:
    # The stop overtook the sealed question on the way to the bot (404: no such answer yet),
    # and then the model server never begins the answer (stalled, or the question held on its
    # way there). The page hears back from the bot only once the gateway begins: the stop must
    # still reach the bot while it waits, so the answer is given up on within the stop's
    # grace, uncharged, and the question given back; not left waiting for the gateway.
    async with webapp_stack(tmp_path, answer=ANSWER, stop_grace=1.0) as stack:
        relay = stack.veil.relay
        assert relay is not None
        page = await open_page(browser, page_url(stack.base, init_data()))
        await ready(page)
        stack.to_bot.hold = b"POST /app/api/relay"
        await ask(page, QUESTION)
        async with asyncio.timeout(15):
            await stack.to_bot.holding.wait()
        await page.click("#send")
        async with asyncio.timeout(15):
            while b"not_running" not in stack.to_bot.downstream:  # noqa: ASYNC110 -- the proxy has no event here
                await asyncio.sleep(0.05)
        stack.to_gateway.open.clear()  # the question will wait on its way to the model server
        try:
            stack.to_bot.release.set()
            await page.wait_for_selector("#notice[data-status=unanswered]", timeout=20000)
        finally:
            await stack.to_gateway.drop()  # what waited on the way never reaches the gateway
            stack.to_gateway.open.set()
        assert await page.get_attribute("#send", "data-state") == "send"
        assert await page.input_value("#question") == QUESTION
        # (the bot asks the gateway for a receipt first, in case it had begun after all)
        await wait_until(lambda: not relay.busy(USER_ID))
        rows = await stack.store.read(lambda db: db.execute("SELECT outcome FROM holds").fetchall())
        assert rows == [("released",)]
        await page.context.close()


async def answered_page(browser: Browser, stack: MiniStack, keychain: Keychain) -> Page:
    """A new page, opened and ready, that has asked QUESTION and been answered."""
    page = await ready_page(browser, stack, keychain)
    await answered(page, QUESTION)
    return page


async def cut_while_answering(
    browser: Browser, stack: MiniStack, until: Callable[[Page], Awaitable[bool]]
) -> Page:
    """Ask in a new page, and once ``until`` holds, cut the page's connection to the bot.

    The page, once it has told the cut (a stream that ended without its final record).
    """
    page = await open_page(browser, page_url(stack.base, init_data()), Keychain())
    await ready(page)
    await ask(page, QUESTION)
    async with asyncio.timeout(15):
        while not await until(page):  # noqa: ASYNC110 -- neither the DOM nor the bot has an event here
            await asyncio.sleep(0.05)
    await stack.to_bot.drop()
    await page.wait_for_selector("#notice[data-error=StreamTruncated]", timeout=15000)
    return page


async def test_a_long_paste_gets_a_whole_answer_fitted_by_the_model_servers_count(
    browser: Browser, tmp_path: Path
) -> None:
    # A paste over half the window by its bytes (its tokens' ceiling) was asked with the
    # 64-token floor, so a model that could read it in a fraction of the window answered 64
    # tokens, cut. It is asked with the answer's room; when the model server finds even that
    # too long, its refusal's count fits the answer, and the page asks once more.
    answer = " ".join(f"w{i}" for i in range(300))
    async with webapp_stack(tmp_path, answer=answer, max_model_len=1024) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()), Keychain())
        await ready(page)
        await ask(page, "hi " * 300)  # 900 bytes, 300 tokens: fits beside a 512-token answer
        await page.wait_for_selector("#notice[data-status=complete]", timeout=15000)
        assert [r["max_completion_tokens"] for r in stack.vllm.requests] == [512]
        assert await page.inner_text("#answer") == answer  # whole, not cut at 64 tokens
        await ask(page, "ok " * 700)  # 700 tokens: 512 more do not fit, what is left does
        async with asyncio.timeout(15):
            while len(stack.vllm.requests) < 3:  # noqa: ASYNC110 -- the fake has no event here
                await asyncio.sleep(0.05)
        asked = [r["max_completion_tokens"] for r in stack.vllm.requests[1:]]
        assert asked == [512, 1024 - stack.vllm.prompt_counts[-1]]
        await page.wait_for_selector("#send[data-state=send]", timeout=15000)
        assert await page.get_attribute("#notice", "data-status") == "complete"
        assert await page.inner_text("#answer") == answer
        await page.context.close()


async def test_a_long_paste_refused_without_a_count_is_asked_as_its_bytes_allow(
    browser: Browser, tmp_path: Path
) -> None:
    # A later vLLM states no exact count ("You passed N input tokens …", N counted only one past
    # the room): the page asked again with nothing to fit by, and the user read that the
    # conversation was too long; as before the room was asked for, the bytes' answer goes.
    answer = " ".join(f"w{i}" for i in range(300))
    async with webapp_stack(tmp_path, answer=answer, max_model_len=1024) as stack:
        stack.vllm.counts_passed = True
        page = await open_page(browser, page_url(stack.base, init_data()), Keychain())
        await ready(page)
        await ask(page, "ok " * 700)
        async with asyncio.timeout(15):
            while len(stack.vllm.requests) < 2:  # noqa: ASYNC110 -- the fake has no event here
                await asyncio.sleep(0.05)
        await page.wait_for_selector("#send[data-state=send]", timeout=15000)
        assert [r["max_completion_tokens"] for r in stack.vllm.requests] == [512, 64]
        assert await page.get_attribute("#notice", "data-status") == "complete"
        assert answer.startswith(await page.inner_text("#answer"))
        await page.context.close()


async def test_an_empty_answer_is_told_free_and_the_question_given_back(
    browser: Browser, tmp_path: Path
) -> None:
    # The model finished without a word: the page showed a receipt line over nothing, and the
    # bot charged the prompt; as in the chat, it is told, costs nothing and can be sent again.
    async with webapp_stack(tmp_path, answer="") as stack:
        page = await open_page(browser, page_url(stack.base, init_data()), Keychain())
        await ready(page)
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-status=empty]", timeout=15000)
        notice = await page.inner_text("#notice")
        assert notice == "The model could not answer this time. Please try again."
        assert await page.input_value("#question") == QUESTION
        assert await page.locator(".bubble").count() == 0
        await page.context.close()
        ((request_id,),) = await stack.store.read(
            lambda db: db.execute("SELECT request_id FROM holds").fetchall()
        )
        state = await settled(stack, bytes.fromhex(request_id))
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.units) == ("released", 0)


async def test_an_answer_cut_at_its_length_limit_is_told_cut_not_whole(
    browser: Browser, tmp_path: Path
) -> None:
    # The model ran out of the answer's room (finish_reason "length"): the page said only
    # "Signed receipt verified: … (complete)", as for a whole answer; the chat says it was cut.
    def answer(body: dict[str, Any]) -> str:
        asked = body["messages"][-1]["content"]
        return "word " * 1500 if asked == QUESTION else "Glad to help."  # past what is asked

    async with webapp_stack(tmp_path, answer=answer) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()), Keychain())
        await ready(page)
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-status=complete]", timeout=15000)
        notice = await page.inner_text("#notice")
        assert await page.get_attribute("#notice", "data-cut") == "length"
        assert notice.startswith("Signed receipt verified: ")
        assert notice.endswith(
            "(complete). ✂️ The answer hit the length limit: ask for the rest in your next question."
        )
        cap = stack.vllm.requests[0]["max_completion_tokens"]
        assert f" + {cap} tokens (complete). ✂️" in notice
        await ask(page, "Thanks")  # a whole answer after it is not told cut
        await page.wait_for_selector("#notice[data-status=complete]:not([data-cut])", timeout=15000)
        assert "✂️" not in await page.inner_text("#notice")
        await page.context.close()


async def test_a_connection_lost_mid_answer_keeps_what_came_and_gives_the_question_back(
    browser: Browser, tmp_path: Path
) -> None:
    # The phone's network goes dark while the answer comes: the part shown is genuine (every
    # chunk checked) and billed, so it is kept as a stopped answer's is, and the question goes
    # back into the input to be sent again once the network is back.
    async with webapp_stack(tmp_path, answer=SLOW_ANSWER, token_delay=0.08) as stack:

        async def some_text_shown(page: Page) -> bool:
            return len(await page.inner_text("#answer")) > 20

        page = await cut_while_answering(browser, stack, some_text_shown)
        assert await page.input_value("#question") == QUESTION
        shown = await page.inner_text("#answer")
        assert SLOW_ANSWER.startswith(shown)
        assert len(shown) < len(SLOW_ANSWER)
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble.user").all_inner_texts() == [QUESTION]
        assert await page.locator(".bubble.assistant").all_inner_texts() == [shown]
        await page.context.close()
        rows = await stack.store.read(
            lambda db: db.execute("SELECT request_id FROM holds").fetchall()
        )
        state = await settled(stack, bytes.fromhex(rows[0][0]))  # from the late receipt
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")


async def test_a_connection_lost_before_any_text_does_not_say_a_part_was_kept(
    browser: Browser, tmp_path: Path
) -> None:
    # The answer had begun (the bot took the question, the model was thinking) but no text had
    # come when the network went dark: there is no part to keep, so the page must not say so.
    async with webapp_stack(tmp_path, answer=ANSWER, token_delay=5.0) as stack:

        async def begun(page: Page) -> bool:  # the bot's reply has begun, its text not yet
            answering = await page.evaluate("globalThis.veilApp.running?.answering === true")
            return bool(answering)

        page = await cut_while_answering(browser, stack, begun)
        notice = await page.inner_text("#notice")
        assert notice == (
            "The connection was lost before the answer began. "
            "Your question is back in the input to send again."
        )
        assert await page.input_value("#question") == QUESTION
        assert await page.locator(".bubble.assistant").count() == 0
        await page.context.close()


async def test_forget_while_an_answer_streams_stops_it_and_keeps_nothing_of_it(
    browser: Browser, tmp_path: Path
) -> None:
    # As /forget does in the chat: the answer being written is stopped (and billed as a stop),
    # and nothing of the erased conversation is written to the new history afterwards.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=SLOW_ANSWER, token_delay=0.08) as stack:
        page = await ready_page(browser, stack, keychain)
        await ask(page, QUESTION)
        async with asyncio.timeout(15):
            while len(await page.inner_text("#answer")) <= 20:  # noqa: ASYNC110 -- the DOM has no event here
                await asyncio.sleep(0.05)
        await page.click("#about-title")
        await page.click("#forget")
        await page.wait_for_selector("#send[data-state=send]", timeout=15000)
        assert await page.locator(".bubble").count() == 0
        assert await page.evaluate(f"localStorage.getItem({HISTORY_SLOT!r})") is None
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble").count() == 0
        await page.context.close()
        rows = await stack.store.read(
            lambda db: db.execute("SELECT request_id FROM holds").fetchall()
        )
        state = await hold_of(stack.store, bytes.fromhex(rows[0][0]))
        assert state is not None
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")


async def test_forget_when_the_keychain_cannot_remove_the_key_erases_and_says_so(
    browser: Browser, tmp_path: Path
) -> None:
    # The keychain fails the key's removal: the history was still erased (its ciphertext is gone
    # from the device), but its key was not destroyed. Until now the failure escaped unhandled:
    # no word on the page, and "History erased: its key is destroyed" was never true.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()), keychain)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await ready(page)
        await answered(page, QUESTION)
        kept_key = dict(keychain.values)
        keychain.refuse_removal = True
        await page.click("#about-title")
        await page.click("#forget")
        await page.wait_for_selector("#notice[data-kind=forgotten]", timeout=15000)
        notice = await page.inner_text("#notice")
        assert "could not remove its key" in notice
        assert "key is destroyed" not in notice
        assert await page.evaluate(f"localStorage.getItem({HISTORY_SLOT!r})") is None
        assert await page.locator(".bubble").count() == 0
        # The next answer is not sealed under the key that was to be destroyed.
        await ask(page, "And the red shed?")
        await page.wait_for_selector("#notice[data-kind=done]", timeout=15000)
        assert await page.evaluate(f"localStorage.getItem({HISTORY_SLOT!r})") is None
        assert keychain.values == kept_key
        assert errors == []
        await page.context.close()


RECORD_VIOLATIONS = """
window.violations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.violations.push([event.effectiveDirective, event.blockedURI]);
});
"""


async def test_forget_leaves_the_screen_at_once_and_a_question_asked_meanwhile_waits_for_it(
    browser: Browser, tmp_path: Path
) -> None:
    # Forget erases the history through the device keychain, which answers when it does. Until
    # then the erased conversation stayed on the screen with Send ready, and a question sent in
    # that window was shown, answered and billed, and then wiped off the screen when the
    # keychain answered (its exchange saved under the destroyed key, so lost too).
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await answered_page(browser, stack, keychain)
        keychain.hold = asyncio.Event()
        await page.click("#about-title")
        await page.click("#forget")
        async with asyncio.timeout(15):
            await keychain.removing.wait()
        assert await page.locator(".bubble").count() == 0
        await page.click("#about-title")
        await ask(page, "And the red one?")
        keychain.hold.set()
        await page.wait_for_selector("#notice[data-status=complete]", timeout=15000)
        assert await page.locator(".bubble").all_inner_texts() == ["And the red one?", ANSWER]
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble").all_inner_texts() == ["And the red one?", ANSWER]
        await page.context.close()
    assert [request["messages"][-1]["content"] for request in stack.vllm.requests] == [
        QUESTION,
        "And the red one?",
    ]
    assert len(stack.vllm.requests[1]["messages"]) == 1  # nothing of the erased history


async def test_the_strict_policy_lets_the_pages_own_style_and_theme_apply_and_nothing_else(
    browser: Browser, tmp_path: Path
) -> None:
    # style-src holds only the hash of the page's own <style>: the browser must still apply it
    # (and the theme's colours, set through CSSOM), and report nothing the policy blocked.
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context = await browser.new_context(viewport={"width": 420, "height": 800})
        page = await context.new_page()
        await page.expose_function("fakeKeychain", Keychain().answer)
        await page.add_init_script(FAKE_TELEGRAM_APP)
        await page.add_init_script(RECORD_VIOLATIONS)
        await page.goto(page_url(stack.base, init_data()))
        await ready(page)
        body = await page.evaluate(
            "(() => { const s = getComputedStyle(document.body);"
            " return [s.display, s.fontSize, s.backgroundColor]; })()"
        )
        violations = await page.evaluate("window.violations")
        await context.close()
    # display and font from the <style>; the background is the theme's secondary_bg_color.
    assert body == ["flex", "15px", "rgb(35, 46, 60)"]
    assert violations == []


async def test_forged_or_stale_init_data_is_refused_in_the_page(
    browser: Browser, tmp_path: Path
) -> None:
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        forged = init_data(token="654321:SOMEONE-ELSES-BOT", language="ru")
        page = await open_page(browser, page_url(stack.base, forged))
        await page.wait_for_selector("#notice[data-error=unauthorized]", timeout=15000)
        assert "Откройте эту страницу из бота Veil" in await page.inner_text("#notice")
        assert await page.inner_text("#title") == "Veil · приватный режим"
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-error=unauthorized]")
        await page.context.close()

        stale = init_data(auth_date=1_700_000_000, language="kk")
        page = await open_page(browser, page_url(stack.base, stale))
        await page.wait_for_selector("#notice[data-error=stale]", timeout=15000)
        assert "боттан қайта ашыңыз" in await page.inner_text("#notice")
        await page.context.close()
        assert not stack.vllm.requests
        rows = await stack.store.read(lambda db: db.execute("SELECT * FROM holds").fetchall())
        assert rows == []


async def test_a_tampered_chunk_is_reported_in_the_page_and_its_text_discarded(
    browser: Browser, tmp_path: Path
) -> None:
    async with webapp_stack(tmp_path, answer=ANSWER, tamper=True) as stack:

        def flip_in_first_chunk(body: bytes) -> bytes:
            if body.startswith(b"{"):
                return body
            at = 4 + 13 + 5  # inside the first chunk's ciphertext
            return body[:at] + bytes([body[at] ^ 0x40]) + body[at + 1 :]

        stack.tampering.rewrite_response = flip_in_first_chunk
        page = await open_page(browser, page_url(stack.base, init_data()))
        await ready(page)
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-error=ChunkTampered]", timeout=15000)
        assert "altered on the way" in await page.inner_text("#notice")
        # The question was answered (and billed), its answer discarded: nothing of it is shown,
        # not even an empty bubble still waiting for it.
        assert await page.locator(".bubble.user").all_inner_texts() == [QUESTION]
        assert await page.locator(".bubble.assistant").count() == 0
        assert await page.evaluate(f"localStorage.getItem({HISTORY_SLOT!r})") is None
        await page.context.close()


async def test_a_chunk_tampered_mid_answer_makes_the_page_hang_up_on_the_rest(
    browser: Browser, tmp_path: Path
) -> None:
    # The page shows nothing of an answer that fails authentication; the bot, which cannot open
    # it, would go on relaying the rest. The page hangs up, so the bot stops the answer and it
    # is charged what was generated, not all of it.
    async with webapp_stack(tmp_path, answer=SLOW_ANSWER, token_delay=0.08, tamper=True) as stack:
        stack.tampering.flip_streamed_at = 4 + 13 + 5  # inside the first chunk's ciphertext
        page = await open_page(browser, page_url(stack.base, init_data()))
        await ready(page)
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-error=ChunkTampered]", timeout=15000)
        assert await page.locator(".bubble.assistant").count() == 0
        rows = await stack.store.read(
            lambda db: db.execute("SELECT request_id FROM holds").fetchall()
        )
        state = await settled(stack, bytes.fromhex(rows[0][0]))
        assert state.charge is not None
        assert state.charge.receipt_status == "stopped"
        assert state.charge.completion_tokens < 80
        await page.context.close()


async def test_a_hostile_answer_is_shown_as_text_right_to_left_and_whole(
    browser: Browser, tmp_path: Path
) -> None:
    # Markup in the model's answer is text, never parsed; an RTL answer reads right to left;
    # characters outside the BMP (split across the stream's records) arrive whole.
    question = "أين المفتاح؟"
    hostile = (
        "مرحبا! المفتاح هنا. <img src=x onerror=\"window.pwned='img'\">"
        "<script>window.pwned='script'</script> 𠜎𠝹 😀👨‍👩‍👧 שלום"
    )
    async with webapp_stack(tmp_path, answer=hostile) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()), Keychain())
        await ready(page)
        await answered(page, question)
        for _ in range(2):  # as it streamed in, and again from the device history
            shown = await page.evaluate(
                """() => [...document.querySelectorAll('.bubble')].map((b) => ({
                  text: b.textContent,
                  children: b.children.length,
                  direction: getComputedStyle(b).direction,
                }))"""
            )
            assert shown == [
                {"text": question, "children": 0, "direction": "rtl"},
                {"text": hostile, "children": 0, "direction": "rtl"},
            ]
            assert await page.evaluate("window.pwned === undefined")
            await page.reload()
            await ready(page)
        await page.context.close()


async def test_a_busy_gateway_is_told_as_busy_with_its_wait(
    browser: Browser, tmp_path: Path
) -> None:
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await open_page(browser, page_url(stack.base, init_data(language="ru")))
        await ready(page)
        stack.gateway.gateway.max_streams = 0  # every slot taken: 503 busy, Retry-After 1
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-error=gateway_refused]", timeout=15000)
        assert await page.inner_text("#notice") == (
            "Сервер модели сейчас занят. Попробуйте снова через 1 с."  # noqa: RUF001 -- Russian
        )
        assert await page.get_attribute("#send", "data-state") == "send"
        # Nothing was sent: the question is back to be sent again, and no "…" waits for it.
        assert await page.input_value("#question") == QUESTION
        assert await page.locator(".bubble").count() == 0
        stack.gateway.gateway.max_streams = 64
        await answered(page, QUESTION)
        assert await page.inner_text("#answer") == ANSWER
        await page.context.close()


async def test_stop_before_the_question_is_sent_sends_nothing_and_keeps_the_question(
    browser: Browser, tmp_path: Path
) -> None:
    # On a slow network Stop shows as soon as Send is pressed, while the page still asks the
    # bot where to seal: a Stop then must not be lost (the question sent and answered whole).
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()))
        await ready(page)
        stack.to_bot.open.clear()  # the page's requests wait in the network
        await ask(page, QUESTION)
        assert await page.get_attribute("#send", "data-state") == "stop"
        await page.click("#send")
        stack.to_bot.open.set()
        await page.wait_for_selector("#notice[data-status=unsent]", timeout=15000)
        assert "nothing was charged" in await page.inner_text("#notice")
        assert await page.get_attribute("#send", "data-state") == "send"
        assert await page.input_value("#question") == QUESTION  # ready to send again
        assert await page.locator(".bubble").count() == 0
        assert stack.vllm.requests == []
        rows = await stack.store.read(lambda db: db.execute("SELECT * FROM holds").fetchall())
        assert rows == []
        await page.context.close()


async def test_stop_while_the_model_server_never_begins_the_answer_ends_it_uncharged(
    browser: Browser, tmp_path: Path
) -> None:
    # The question reached the bot but never the model server (stalled, or held on the way):
    # Stop is honoured within the stop's grace, told as stopped before the answer began, the
    # question given back and nothing charged; not left waiting, then told as no server.
    async with webapp_stack(tmp_path, answer=ANSWER, stop_grace=1.0) as stack:
        relay = stack.veil.relay
        assert relay is not None
        page = await open_page(browser, page_url(stack.base, init_data()))
        await ready(page)
        stack.to_gateway.open.clear()  # the question waits on its way to the model server
        try:
            await ask(page, QUESTION)
            await wait_until(lambda: relay.running == 1)
            await page.click("#send")
            await page.wait_for_selector("#notice[data-status=unanswered]", timeout=15000)
        finally:
            await stack.to_gateway.drop()  # what waited on the way never reaches the gateway
            stack.to_gateway.open.set()
        # The bot is still asking the stalled gateway for a receipt, in case it had begun
        # after all: not yet known to be "nothing", and not told so.
        notice = await page.inner_text("#notice")
        assert "nothing was charged" not in notice
        assert "as far as the bot knows yet" in notice
        assert await page.get_attribute("#send", "data-state") == "send"
        assert await page.input_value("#question") == QUESTION
        assert await page.locator(".bubble").count() == 0
        await wait_until(lambda: not relay.busy(USER_ID))
        rows = await stack.store.read(lambda db: db.execute("SELECT outcome FROM holds").fetchall())
        assert rows == [("released",)]
        await page.context.close()


async def test_stop_that_gives_up_on_a_model_server_that_had_begun_tells_what_was_charged(
    browser: Browser, tmp_path: Path
) -> None:
    # The model server began the answer, but its reply was held on the way back; Stop's grace
    # ended and the bot stopped waiting. The page said "nothing was charged" while the bot
    # charged the server's stopped receipt afterwards: it is told what was charged instead.
    answer = " ".join(f"word{i}" for i in range(400))
    async with webapp_stack(tmp_path, answer=answer, token_delay=0.05, stop_grace=1.0) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()))
        await ready(page)
        stack.to_gateway.hold_replies = b"POST /v1/sealed/chat"
        try:
            await ask(page, QUESTION)
            async with asyncio.timeout(15):  # the server began: its reply is on its way
                await stack.to_gateway.replies_held.wait()
            await page.click("#send")
            await page.wait_for_selector("#notice[data-status=unanswered]", timeout=20000)
        finally:
            stack.to_gateway.replies_released.set()
        rows = await stack.store.read(
            lambda db: db.execute("SELECT request_id, outcome FROM holds").fetchall()
        )
        assert [outcome for _, outcome in rows] == ["settled"]  # settled before the page heard
        state = await hold_of(stack.store, bytes.fromhex(rows[0][0]))
        assert state is not None
        assert state.charge is not None
        notice = await page.inner_text("#notice")
        assert "nothing was charged" not in notice
        counts = f"{state.charge.prompt_tokens} + {state.charge.completion_tokens} tokens"
        assert f"{counts} were charged" in notice
        assert await page.input_value("#question") == QUESTION
        await page.context.close()


# Fill the page's storage so that the history as stored now is all that still fits (to the
# character), and say how much junk that took.
FILL_STORAGE = """() => {
  localStorage.removeItem("junk");
  let low = 0, high = 16 * 1024 * 1024;  // characters: above Chromium's quota
  while (low < high) {
    const size = Math.ceil((low + high) / 2);
    try {
      localStorage.setItem("junk", "x".repeat(size));
      low = size;
    } catch {
      high = size - 1;
    }
  }
  localStorage.setItem("junk", "x".repeat(low));
  return low;
}"""


async def test_a_full_device_storage_drops_the_oldest_history_never_the_answer(
    browser: Browser, tmp_path: Path
) -> None:
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await ready_page(browser, stack, keychain)
        questions = [f"Question number {i}?" for i in range(4)]
        for question in questions[:2]:
            await answered(page, question)
        assert await page.evaluate(FILL_STORAGE) > 0
        # One more exchange does not fit beside the junk: the oldest one makes room.
        await answered(page, questions[2])
        assert "verified" in await page.inner_text("#notice")
        assert await page.get_attribute("#notice", "data-error") is None
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble.user").all_inner_texts() == questions[1:3]
        # Nothing fits at all now: the answer is shown and billed, and the page says the
        # history could not be saved (not that the connection failed).
        await page.evaluate(f"localStorage.setItem({HISTORY_SLOT!r}, '')")
        await page.evaluate(FILL_STORAGE)
        await answered(page, questions[3])
        notice = await page.inner_text("#notice")
        assert "verified" in notice
        assert "storage is full" in notice
        assert await page.get_attribute("#notice", "data-error") is None
        assert await page.inner_text("#answer") == ANSWER
        await page.context.close()


async def test_a_device_clock_ten_minutes_ahead_still_gets_answers(
    browser: Browser, tmp_path: Path
) -> None:
    # The gateway refuses a sealed request whose timestamp is more than two minutes from its
    # clock; a phone's clock set by hand can be further off than that.
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context = await browser.new_context()
        page = await context.new_page()
        await page.expose_function("fakeKeychain", Keychain().answer)
        await page.add_init_script(FAKE_TELEGRAM_APP)
        await page.add_init_script("Date.now = ((real) => () => real() + 600_000)(Date.now);")
        await page.goto(page_url(stack.base, init_data()))
        await ready(page)
        await answered(page, QUESTION)
        assert await page.inner_text("#answer") == ANSWER
        await context.close()


async def test_a_question_sealed_to_a_rotated_out_key_is_sealed_again_and_answered(
    browser: Browser, tmp_path: Path
) -> None:
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()))
        await ready(page)
        await ask(page, QUESTION)  # the bot has the bundle now
        await page.wait_for_selector("#notice[data-status=complete]", timeout=15000)
        gateway = stack.gateway.gateway
        gateway.ring.rotate(gateway.now())
        gateway.ring._keys = gateway.ring._keys[:1]  # the old key's window closes at once
        # The bot still offers the old bundle: the page seals to it, the gateway answers 410,
        # the bot fetches the new bundle, and the page prepares and seals once more.
        await answered(page, "And the red one?")
        assert await page.inner_text("#answer") == ANSWER
        await page.context.close()
        holds = await stack.store.read(
            lambda db: db.execute("SELECT request_id FROM holds ORDER BY rowid").fetchall()
        )
        outcomes = []
        for (request_id,) in holds:
            state = await hold_of(stack.store, bytes.fromhex(request_id))
            assert state is not None
            assert state.charge is not None
            outcomes.append(state.charge.outcome)
        assert await inconsistent_users(stack.store) == []
    assert outcomes == ["settled", "released", "settled"]  # the refused one cost nothing
    assert len(stack.vllm.requests) == 2


async def test_the_bots_own_failure_is_told_as_the_bots_and_the_question_is_kept(
    browser: Browser, tmp_path: Path
) -> None:
    # The bot's database is locked by another process past its busy timeout (a backup, a
    # "reconcile --fix"): the hold cannot be written. That is the bot's trouble, not a model
    # server's refusal; nothing is held, and the question can be sent again once it passes.
    async with webapp_stack(tmp_path, answer=ANSWER, db_busy_timeout=0.2) as stack:
        page = await open_page(browser, page_url(stack.base, init_data(language="ru")))
        await ready(page)
        locker = sqlite3.connect(tmp_path / "veil.db", isolation_level=None)
        try:
            locker.execute("BEGIN IMMEDIATE")  # readers go on (WAL); no write gets the lock
            await ask(page, QUESTION)
            await page.wait_for_selector("#notice[data-error=ledger]", timeout=15000)
        finally:
            locker.close()
        assert await page.inner_text("#notice") == (
            "Бот не смог принять ваш вопрос прямо сейчас. Попробуйте ещё раз чуть позже."
        )
        assert await page.input_value("#question") == QUESTION
        assert await page.locator(".bubble").count() == 0
        assert stack.vllm.requests == []
        await page.click("#send")
        await page.wait_for_selector("#notice[data-status=complete]", timeout=15000)
        assert await page.inner_text("#answer") == ANSWER
        await page.context.close()
        rows = await stack.store.read(
            lambda db: db.execute("SELECT request_id FROM holds").fetchall()
        )
        assert len(rows) == 1
        assert await inconsistent_users(stack.store) == []


async def test_a_balance_that_cannot_be_refreshed_keeps_the_receipt_line(
    browser: Browser, tmp_path: Path
) -> None:
    # The answer came with its verified receipt; then the phone's network drops the balance
    # refresh. The notice still says the charge is backed by a signed receipt, and the balance
    # says it is not up to date (it would show the amount before the charge).
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()))
        await ready(page)
        await page.route("**/api/account", lambda route: route.abort("internetdisconnected"))
        await ask(page, QUESTION)
        await page.wait_for_selector(
            "#balance[data-stale=true], #notice[data-error]", timeout=15000
        )
        assert await page.get_attribute("#notice", "data-error") is None
        assert await page.get_attribute("#notice", "data-status") == "complete"
        assert "Signed receipt verified" in await page.inner_text("#notice")
        assert await page.inner_text("#balance") == "The balance could not be updated just now."
        assert await page.inner_text("#answer") == ANSWER
        # Once the network is back, the next answer's refresh shows the balance again.
        await page.unroute("**/api/account")
        await ask(page, "And the red one?")
        await page.wait_for_selector("#balance:not([data-stale])", timeout=15000)
        assert "Balance:" in await page.inner_text("#balance")
        await page.context.close()


async def test_the_bots_refusals_are_told_as_the_bots_not_the_model_servers(
    browser: Browser, tmp_path: Path
) -> None:
    # A request id the bot already held (409 request_id_taken), a declaration it cannot read
    # (400 bad_request) and a body past the largest sealed request (413 too_large) are the
    # bot's refusals: none is "the model server refused".
    # The relay's headers are changed on the way, as a faulty proxy would.
    sent: dict[str, str] = {}

    async def first_id(route: Route) -> None:
        sent.setdefault("id", route.request.headers["veil-request-id"])
        await route.continue_()

    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await open_page(browser, page_url(stack.base, init_data(language="ru")))
        await ready(page)
        await page.route("**/api/relay", first_id)
        await answered(page, QUESTION)
        await page.unroute("**/api/relay")

        async def replayed(route: Route) -> None:
            headers = route.request.headers | {"veil-request-id": sent["id"]}
            await route.continue_(headers=headers)

        await page.route("**/api/relay", replayed)
        await ask(page, "And the red one?")
        await page.wait_for_selector("#notice[data-error]", timeout=15000)
        assert await page.get_attribute("#notice", "data-error") == "request_id_taken"
        assert await page.inner_text("#notice") == (
            "Этот запрос уже был отправлен, поэтому повторно он не отправлен. "
            "Отправьте вопрос ещё раз."
        )
        assert await page.input_value("#question") == "And the red one?"
        await page.unroute("**/api/relay")

        async def unreadable(route: Route) -> None:
            headers = route.request.headers | {"veil-max-tokens": "many"}
            await route.continue_(headers=headers)

        await page.route("**/api/relay", unreadable)
        await page.click("#send")
        await page.wait_for_selector("#notice[data-error=bad_request]", timeout=15000)
        assert await page.inner_text("#notice") == (
            "Бот не смог принять запрос этой страницы (bad_request). "
            "Закройте страницу и откройте её снова из бота."
        )
        assert await page.input_value("#question") == "And the red one?"
        await page.unroute("**/api/relay")

        async def swollen(route: Route) -> None:  # past the largest sealed request
            body = route.request.post_data_buffer or b""
            await route.continue_(post_data=body + bytes(2 << 20))

        await page.route("**/api/relay", swollen)
        await page.click("#send")
        await page.wait_for_selector("#notice[data-error=too_large]", timeout=15000)
        assert await page.inner_text("#notice") == (
            "Разговор слишком длинный для отправки. Сотрите историю, чтобы начать заново."
        )
        assert await page.input_value("#question") == "And the red one?"
        await page.context.close()
        assert len(stack.vllm.requests) == 1
        assert await inconsistent_users(stack.store) == []


async def test_a_model_servers_refusal_is_told_as_what_it_means(
    browser: Browser, tmp_path: Path
) -> None:
    # The gateway's clock is ten minutes off the bot's (by which the page stamps the sealed
    # question): it refuses the timestamp (400 stale_request). The page says so, not a bare
    # "refused (stale_request)"; the question is given back and nothing is charged.
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()))
        await ready(page)
        clock = stack.gateway.gateway.clock
        assert isinstance(clock, Clock)
        clock.advance(600)
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-error]", timeout=15000)
        assert await page.get_attribute("#notice", "data-error") == "gateway_refused"
        assert await page.inner_text("#notice") == (
            "The model server's clock disagrees with the bot's, so it refused the question. "
            "Please try again later."
        )
        assert await page.input_value("#question") == QUESTION
        await page.context.close()
        assert stack.vllm.requests == []
        assert await inconsistent_users(stack.store) == []


async def test_a_page_opened_before_an_operator_key_rotation_says_to_reopen_it(
    browser: Browser, tmp_path: Path
) -> None:
    # The drill of docs/operations.md "Key rotation" with the bot as a process: the page is
    # opened while the bot pins the old operator key; the operator then pins old and new on
    # the bot and restarts it, and the gateway restarts signing with the new key. The open page
    # pins only the old key (the one it shows): it sends nothing, gives the question back and
    # says plainly to reopen it; reopened, it pins both and the question is answered.
    new_operator = ed25519.Ed25519PrivateKey.generate()
    async with (
        process_stack(tmp_path / "data", answer=ANSWER) as stack,
        run_gateway(stack.vllm.url, operator=new_operator) as rotated,
    ):
        port = free_port()
        base = f"http://127.0.0.1:{port}/app/"
        env = stack.env | {
            "VEIL_FREE_TOKENS_PER_DAY": "1000000",
            "VEIL_WEBAPP_URL": base,
            "VEIL_WEBAPP_PORT": str(port),
        }
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started", within=60)
            page = await open_page(browser, page_url(base, init_data()))
            await ready(page)
            await answered(page, QUESTION)
        finally:
            await bot.stop(within=60)
        keys = f"{b64e(stack.gateway.verify_key)},{b64e(rotated.verify_key)}"
        env |= {"VEIL_OPERATOR_KEYS": keys, "VEIL_GATEWAYS": rotated.url}
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started", within=60)
            await ask(page, "And the red one?")
            await page.wait_for_selector("#notice[data-error]", timeout=15000)
            assert await page.get_attribute("#notice", "data-error") == "reopen"
            assert await page.inner_text("#notice") == (
                "The operator's keys have changed since this page was opened. "
                "Close it and open it again from the bot."
            )
            assert await page.input_value("#question") == "And the red one?"
            assert len(stack.vllm.requests) == 1
            await page.reload()  # reopened: the page pins what the bot pins now
            await ready(page)
            await answered(page, "And the red one?")
            assert await page.inner_text("#answer") == ANSWER
            await page.context.close()
        finally:
            await bot.stop(within=60)
    assert len(stack.vllm.requests) == 2


async def test_a_gateway_the_page_cannot_seal_to_is_not_told_as_a_key_rotation(
    browser: Browser, tmp_path: Path
) -> None:
    # The page seals to suite 1 only. A gateway under suite 2 (post-quantum) serves a bundle
    # that verifies under the pinned keys, which the page skipped; with none other, the page
    # took it for an operator key rotation (the page it re-read pins the same keys, which
    # verify that bundle) and said to reopen it, which never helps.
    async with webapp_stack(tmp_path, answer=ANSWER, suite=Suite.MLKEM768_X25519) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()), Keychain())
        await ready(page)
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-error]", timeout=15000)
        assert await page.get_attribute("#notice", "data-error") == "untrusted"
        assert await page.input_value("#question") == QUESTION
        await page.context.close()
    assert stack.vllm.requests == []


async def test_a_page_opened_offline_answers_the_first_question_once_online(
    browser: Browser, tmp_path: Path
) -> None:
    # The phone's network is down as the page opens (the page itself from the app's cache or
    # the network back a moment later): the balance and models cannot be fetched, and the page
    # says so. Back online, the first question is asked for the model the bot offers.
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context = await browser.new_context(viewport={"width": 420, "height": 800})
        page = await context.new_page()
        await page.expose_function("fakeKeychain", Keychain().answer)
        await page.add_init_script(FAKE_TELEGRAM_APP)
        await page.route("**/api/account", lambda route: route.abort("internetdisconnected"))
        await page.goto(page_url(stack.base, init_data()))
        await ready(page)
        assert await page.get_attribute("#notice", "data-error") == "network"
        await page.unroute("**/api/account")
        await ask(page, QUESTION)
        ended = "#notice[data-kind=done], #notice[data-kind=error]:not([data-error=network])"
        await page.wait_for_selector(ended, timeout=15000)
        assert await page.get_attribute("#notice", "data-error") is None
        assert await page.get_attribute("#notice", "data-status") == "complete"
        assert await page.inner_text("#answer") == ANSWER
        assert await page.input_value("#model") == "veil-test"
        await context.close()
    assert len(stack.vllm.requests) == 1


# A webview without Web Locks (iOS before 15.4, say): the pages cannot take turns with them.
NO_WEB_LOCKS = "delete Navigator.prototype.locks;"


async def test_a_second_page_on_the_device_keeps_the_first_pages_exchanges(
    browser: Browser, tmp_path: Path
) -> None:
    # Two pages of one user on one device share its storage and keychain. Each kept only the
    # history it had read when it opened, so the second page's answer overwrote the first's.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context, first, second = await two_pages(browser, stack, keychain)
        await answered(first, QUESTION)
        await answered(second, "And the red one?")
        await second.reload()
        await ready(second)
        assert await second.locator(".bubble.user").all_inner_texts() == [
            QUESTION,
            "And the red one?",
        ]
        await context.close()
    # The second question went with the first exchange as its context, as in one page.
    assert [m["content"] for m in stack.vllm.requests[1]["messages"]] == [
        QUESTION,
        ANSWER,
        "And the red one?",
    ]


@pytest.mark.parametrize("script", ["", NO_WEB_LOCKS], ids=["web_locks", "no_web_locks"])
async def test_forget_on_one_page_is_not_undone_by_another_page_of_the_device(
    browser: Browser, tmp_path: Path, script: str
) -> None:
    # Forget on one page destroys the keychain's history key and makes a new one. Another page
    # of the device, still holding the old key, sent the erased conversation as its next
    # question's context and saved it (with its new exchange) under the destroyed key, where no
    # page could read it again: the erased turns went to the model server once more, and the
    # new exchange was lost.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context, first, second = await two_pages(browser, stack, keychain, script)
        await answered(first, QUESTION)
        await second.click("#about-title")
        await second.click("#forget")
        await second.wait_for_selector("#notice[data-kind=forgotten]", timeout=15000)
        await answered(first, "And the red one?")
        # The erased exchange is off the first page's screen too.
        assert await first.locator(".bubble").all_inner_texts() == ["And the red one?", ANSWER]
        await seen_by_both(first, second)
        await second.reload()
        await ready(second)
        assert await second.locator(".bubble").all_inner_texts() == ["And the red one?", ANSWER]
        await context.close()
    assert [m["content"] for m in stack.vllm.requests[1]["messages"]] == ["And the red one?"]


@pytest.mark.parametrize("script", ["", NO_WEB_LOCKS], ids=["web_locks", "no_web_locks"])
async def test_a_forget_the_keychain_refused_holds_on_other_pages_and_on_reopen(
    browser: Browser, tmp_path: Path, script: str
) -> None:
    # Forget erased the ciphertext, but the keychain kept the key. Another page of the device,
    # whose key was still the keychain's, sent the erased exchange as its next question's
    # context and saved it again; a page opened later kept new answers under the key that was
    # to be destroyed, though the page had said nothing more would be kept until then.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context, first, second = await two_pages(browser, stack, keychain, script)
        await answered(first, QUESTION)
        kept_key = dict(keychain.values)
        keychain.refuse_removal = True
        await second.click("#about-title")
        await second.click("#forget")
        await second.wait_for_selector("#notice[data-kind=forgotten]", timeout=15000)
        await answered(first, "And the red one?")
        assert await first.locator(".bubble").all_inner_texts() == ["And the red one?", ANSWER]
        assert await first.evaluate(f"localStorage.getItem({HISTORY_SLOT!r})") is None
        await second.reload()
        await ready(second)
        await answered(second, "And the green one?")
        assert await second.evaluate(f"localStorage.getItem({HISTORY_SLOT!r})") is None
        assert keychain.values == kept_key
        # Once the keychain removes the key, the next page opened makes a new one and keeps.
        keychain.refuse_removal = False
        await second.reload()
        await ready(second)
        assert await second.locator(".bubble").count() == 0
        assert keychain.values.keys() == kept_key.keys()
        assert keychain.values != kept_key
        await answered(second, "And the grey one?")
        assert await second.evaluate(f"localStorage.getItem({HISTORY_SLOT!r})") is not None
        await context.close()
    assert [m["content"] for m in stack.vllm.requests[1]["messages"]] == ["And the red one?"]
    assert [m["content"] for m in stack.vllm.requests[2]["messages"]] == ["And the green one?"]


async def test_forget_on_a_page_the_keychain_did_not_answer_at_open_destroys_the_key(
    browser: Browser, tmp_path: Path
) -> None:
    # A page whose keychain did not answer when it opened keeps nothing itself, but the
    # device's key and history are there all the same. Its Forget erased the ciphertext and
    # left the key in the keychain, yet said the key was destroyed; another page of the
    # device, still holding the erased turns, sent them as its next question's context and
    # wrote them back.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context = await browser.new_context(viewport={"width": 420, "height": 800})
        await context.expose_function("fakeKeychain", keychain.answer)
        await context.add_init_script(FAKE_TELEGRAM_APP)
        first = await context.new_page()
        await first.goto(page_url(stack.base, init_data()))
        await ready(first)
        await answered(first, QUESTION)
        kept_key = dict(keychain.values)
        keychain.hold_reads, keychain.reads_to_hold = asyncio.Event(), 1
        second = await context.new_page()
        await second.goto(page_url(stack.base, init_data()))
        await ready(second)  # once its keychain read gave up: nothing kept on this page
        keychain.hold_reads.set()
        await second.click("#about-title")
        await second.click("#forget")
        await second.wait_for_selector("#notice[data-kind=forgotten]", timeout=15000)
        assert "key is destroyed" in await second.inner_text("#notice")
        assert keychain.values != kept_key  # destroyed (and a new one made)
        await answered(first, "And the red one?")
        assert await first.locator(".bubble.user").all_inner_texts() == ["And the red one?"]
        await context.close()
    assert [m["content"] for m in stack.vllm.requests[1]["messages"]] == ["And the red one?"]


async def test_forget_in_an_app_without_a_keychain_is_not_told_as_a_key_kept(
    browser: Browser, tmp_path: Path
) -> None:
    # An app of Bot API 9.0+ without SecureStorage (Telegram Desktop, the web apps) refuses
    # each keychain request. Its Forget tried to remove the key all the same, was refused, and
    # said the keychain had kept the key (press Forget again later); that Forget stayed due,
    # so the page said so again at every opening, and no Forget could ever end it.
    keychain = Keychain()
    keychain.unsupported = True
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await ready_page(browser, stack, keychain)
        assert "history is not saved" in await page.inner_text("#notice")
        await answered(page, QUESTION)
        await page.click("#about-title")
        await page.click("#forget")
        await page.wait_for_selector("#notice[data-kind=forgotten]", timeout=15000)
        assert await page.inner_text("#notice") == "History erased: its key is destroyed."
        assert await page.locator(".bubble").count() == 0
        await page.reload()
        await ready(page)
        assert "history is not saved" in await page.inner_text("#notice")
        assert await page.evaluate(f"localStorage.getItem({HISTORY_SLOT + ':forget'!r})") is None
        await page.context.close()


@pytest.mark.parametrize("script", ["", NO_WEB_LOCKS], ids=["web_locks", "no_web_locks"])
async def test_forget_on_another_page_while_an_answer_is_written_keeps_nothing_of_it(
    browser: Browser, tmp_path: Path, script: str
) -> None:
    # As Forget on the page itself does: the answer written while another page erased the
    # history belongs to the erased conversation, so it is not kept, and it leaves this page's
    # screen with the rest of that conversation when the next question is asked.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=SLOW_ANSWER, token_delay=0.05) as stack:
        context, first, second = await two_pages(browser, stack, keychain, script)
        await ask(first, QUESTION)
        async with asyncio.timeout(15):
            while len(await first.inner_text("#answer")) <= 20:  # noqa: ASYNC110 -- the DOM has no event here
                await asyncio.sleep(0.05)
        await second.click("#about-title")
        await second.click("#forget")
        await second.wait_for_selector("#notice[data-kind=forgotten]", timeout=15000)
        await first.wait_for_selector("#notice[data-status=complete]", timeout=30000)
        await seen_by_both(first, second)  # a late keeping of the answer would show below
        await second.reload()
        await ready(second)
        assert await second.locator(".bubble").count() == 0
        await ask(first, "And the red one?")
        await first.wait_for_selector("#notice[data-status=complete]", timeout=30000)
        assert await first.locator(".bubble.user").all_inner_texts() == ["And the red one?"]
        await context.close()
    assert [m["content"] for m in stack.vllm.requests[1]["messages"]] == ["And the red one?"]


async def pending_locks(page: Page) -> int:
    """How many Web Lock requests of ``page`` wait for a lock another holds."""
    script = "navigator.locks ? navigator.locks.query().then((s) => s.pending.length) : 0"
    return int(await page.evaluate(script))


async def kept_or_waiting(page: Page) -> bool:
    """Whether ``page`` has answered and kept its exchange, or waits to read the history."""
    status = await page.get_attribute("#notice", "data-status")
    state = await page.get_attribute("#send", "data-state")
    return (status, state) == ("complete", "send") or await pending_locks(page) > 0


async def written_or_waiting(page: Page) -> bool:
    """Whether ``page`` has written the history, or waits to read it."""
    stored = await page.evaluate(f"localStorage.getItem({HISTORY_SLOT!r})")
    return stored is not None or await pending_locks(page) > 0


async def written_or_removing(page: Page, keychain: Keychain) -> bool:
    """Whether ``page`` has written the history, or waits for a Forget's lock or removal."""
    return keychain.removals_held > 1 or await written_or_waiting(page)


async def finished(page: Page) -> bool:
    """Whether ``page`` is done with its question (the answer ended, kept or not)."""
    return await page.get_attribute("#send", "data-state") == "send"


@pytest.mark.parametrize("script", ["", NO_WEB_LOCKS], ids=["web_locks", "no_web_locks"])
async def test_two_pages_keeping_their_answers_at_once_keep_both(
    browser: Browser, tmp_path: Path, script: str
) -> None:
    # One page kept its exchange while the keychain was slow to give the key (the first of a
    # history), and another page of the device asked and kept one meanwhile: each had read the
    # history before the other wrote, so the first page's write held only its own exchange,
    # and the other page's was lost from the device.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context, first, second = await two_pages(browser, stack, keychain, script)
        stack.to_bot.hold_replies = b"POST /app/api/relay"  # the answer waits on its way
        await ask(first, QUESTION)
        await wait_until(lambda: len(stack.vllm.requests) == 1)
        stack.to_bot.hold_replies = None
        keychain.hold_reads, keychain.reads_to_hold = asyncio.Event(), 1
        stack.to_bot.replies_released.set()
        await first.wait_for_selector("#notice[data-status=complete]", timeout=15000)
        await wait_until(lambda: keychain.reads_waiting == 1)  # keeping it, the key slow to come
        await ask(second, "And the red one?")
        async with asyncio.timeout(15):  # answered and kept, or waiting for the first to keep
            while not await kept_or_waiting(second):  # noqa: ASYNC110 -- polled from outside the page
                await asyncio.sleep(0.02)
        keychain.hold_reads.set()
        await second.wait_for_selector("#notice[data-status=complete]", timeout=15000)
        for page in (first, second):
            await page.wait_for_selector("#send[data-state=send]", timeout=15000)
        await second.reload()
        await ready(second)
        kept = await second.locator(".bubble.user").all_inner_texts()
        await context.close()
    # Both kept (without Web Locks the first page, finding the second's exchange written
    # since it read, keeps its own after it).
    assert sorted(kept) == sorted([QUESTION, "And the red one?"])


@pytest.mark.parametrize("script", ["", NO_WEB_LOCKS], ids=["web_locks", "no_web_locks"])
async def test_an_answer_kept_while_another_page_forgets_does_not_bring_the_history_back(
    browser: Browser, tmp_path: Path, script: str
) -> None:
    # One page's answer ended while another page of the device was forgetting (the keychain
    # slow to remove the key). The first page found the ciphertext gone and the key still in
    # the keychain, so it wrote the whole erased history back, with its new exchange, under
    # the key being destroyed; its next question sent the erased history to the model again.
    # Without Web Locks the first page does not wait for the Forget: it finds the Forget's
    # mark beside the ciphertext, newer than the one it read, drops the erased history and
    # its exchange, and says so.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context, first, second = await two_pages(browser, stack, keychain, script)
        await answered(first, QUESTION)
        stack.to_bot.hold_replies = b"POST /app/api/relay"  # the answer waits on its way
        await ask(first, "And the red one?")
        await wait_until(lambda: len(stack.vllm.requests) == 2)
        keychain.hold = asyncio.Event()
        await second.click("#about-title")
        await second.click("#forget")
        async with asyncio.timeout(15):
            await keychain.removing.wait()
        stack.to_bot.replies_released.set()  # the answer ends while the key is being removed
        await first.wait_for_selector("#notice[data-status=complete]", timeout=15000)
        # Written, or waiting for the Forget (its lock; without, removing the key with it, as
        # the Forget's removal is due), or done.
        async with asyncio.timeout(15):
            while not await written_or_removing(first, keychain) and not await finished(first):  # noqa: ASYNC110 -- polled from outside the page
                await asyncio.sleep(0.02)
        assert await first.evaluate(f"localStorage.getItem({HISTORY_SLOT!r})") is None
        keychain.hold.set()
        await second.wait_for_selector("#notice[data-kind=forgotten]", timeout=15000)
        assert "key is destroyed" in await second.inner_text("#notice")
        await first.wait_for_selector("#send[data-state=send]", timeout=15000)
        if script:  # it did not wait: it is told why its exchange was not kept
            assert "forgotten on another page" in await first.inner_text("#notice")
        await answered(first, "And the green one?")
        assert await first.locator(".bubble.user").all_inner_texts() == ["And the green one?"]
        await seen_by_both(first, second)
        await second.reload()
        await ready(second)
        assert await second.locator(".bubble").all_inner_texts() == ["And the green one?", ANSWER]
        await context.close()
    assert [m["content"] for m in stack.vllm.requests[2]["messages"]] == ["And the green one?"]


@pytest.mark.parametrize("script", ["", NO_WEB_LOCKS], ids=["web_locks", "no_web_locks"])
async def test_forget_while_the_page_keeps_its_answer_keeps_nothing_of_it(
    browser: Browser, tmp_path: Path, script: str
) -> None:
    # Without Web Locks: Forget was pressed as the page kept its answer (the first of a
    # history, the keychain slow to give the key). The Forget erased, destroyed the key and
    # made a new one; the keeping then found the new key the keychain's and wrote the erased
    # conversation's exchange under it, back on the screen and sent as the next question's
    # context, though the page had said the history was forgotten.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context = await browser.new_context(viewport={"width": 420, "height": 800})
        await context.expose_function("fakeKeychain", keychain.answer)
        await context.add_init_script(FAKE_TELEGRAM_APP + script)
        page = await context.new_page()
        await page.goto(page_url(stack.base, init_data()))
        await ready(page)
        await page.click("#about-title")
        stack.to_bot.hold_replies = b"POST /app/api/relay"  # the answer waits on its way
        await ask(page, QUESTION)
        await wait_until(lambda: len(stack.vllm.requests) == 1)
        stack.to_bot.hold_replies = None
        keychain.hold_reads, keychain.reads_to_hold = asyncio.Event(), 1
        stack.to_bot.replies_released.set()
        await wait_until(lambda: keychain.reads_waiting == 1)  # keeping it, the key slow to come
        await page.click("#forget")
        async with asyncio.timeout(15):  # forgotten, or waiting for the answer to be kept
            while not script and not await pending_locks(page):  # noqa: ASYNC110 -- polled from outside the page
                await asyncio.sleep(0.02)
            while script and await page.get_attribute("#notice", "data-kind") != "forgotten":  # noqa: ASYNC110 -- polled from outside the page
                await asyncio.sleep(0.02)
        keychain.hold_reads.set()
        await page.wait_for_selector("#notice[data-kind=forgotten]", timeout=15000)
        await page.wait_for_selector("#send[data-state=send]", timeout=15000)
        assert "another page" not in await page.inner_text("#notice")
        assert await page.locator(".bubble").count() == 0
        assert await page.evaluate(f"localStorage.getItem({HISTORY_SLOT!r})") is None
        await answered(page, "And the red one?")
        assert await page.locator(".bubble.user").all_inner_texts() == ["And the red one?"]
        await context.close()
    assert [m["content"] for m in stack.vllm.requests[1]["messages"]] == ["And the red one?"]


async def forgetting_or_waiting(page: Page, keychain: Keychain) -> bool:
    """Whether ``page``'s Forget is removing the key, or waits to read the history."""
    return keychain.removing.is_set() or await pending_locks(page) > 0


@pytest.mark.parametrize("script", ["", NO_WEB_LOCKS], ids=["web_locks", "no_web_locks"])
async def test_an_answer_kept_as_another_page_forgets_is_not_kept_twice_nor_the_history_back(
    browser: Browser, tmp_path: Path, script: str
) -> None:
    # Without Web Locks: one page kept an exchange while another page of the device forgot
    # (the keychain slow to remove the key). Finding the history it had read gone, the first
    # page tried again from the turns it held, its exchange already pushed: it pushed it
    # again and wrote the erased history back with that exchange twice, under the key being
    # destroyed, and its next question sent them to the model. The history the first page
    # reads here is one under a key the keychain lost (reset), so that its keychain read,
    # held, comes between its read and its write, as a slow keychain's does.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context, first, second = await two_pages(browser, stack, keychain, script)
        await answered(first, QUESTION)
        keychain.values.clear()  # the keychain was reset: what is stored cannot be read now
        for page in (first, second):
            await page.reload()
            await ready(page)
        stack.to_bot.hold_replies = b"POST /app/api/relay"  # the answer waits on its way
        await ask(first, "And the red one?")
        await wait_until(lambda: len(stack.vllm.requests) == 2)
        stack.to_bot.hold_replies = None
        keychain.hold_reads, keychain.reads_to_hold = asyncio.Event(), 1
        stack.to_bot.replies_released.set()
        await wait_until(lambda: keychain.reads_waiting == 1)  # keeping it, the key slow to come
        keychain.hold = asyncio.Event()
        await second.click("#about-title")
        await second.click("#forget")
        async with asyncio.timeout(15):  # removing the key, or waiting for the first to keep
            while not await forgetting_or_waiting(second, keychain):  # noqa: ASYNC110 -- polled from outside the page
                await asyncio.sleep(0.02)
        keychain.hold_reads.set()
        await first.wait_for_selector("#send[data-state=send]", timeout=15000)
        keychain.hold.set()
        await second.wait_for_selector("#notice[data-kind=forgotten]", timeout=15000)
        assert await first.evaluate(f"localStorage.getItem({HISTORY_SLOT!r})") is None
        await answered(first, "And the green one?")
        assert await first.locator(".bubble.user").all_inner_texts() == ["And the green one?"]
        await context.close()
    assert [m["content"] for m in stack.vllm.requests[2]["messages"]] == ["And the green one?"]


async def test_a_page_open_across_a_gateway_restart_is_answered(
    browser: Browser, tmp_path: Path
) -> None:
    # The drill with real processes: the bot and the gateway each `python -m`, the page open
    # in the browser. The gateway restarts (an upgrade; step 3 of a rotation): a new HPKE key,
    # the same operator key. The next question from the page opened before is answered.
    key_file, verify_key = await new_operator_key(tmp_path)
    port, webapp_port = free_port(), free_port()
    base = f"http://127.0.0.1:{webapp_port}/app/"
    async with FakeTelegram(token=TOKEN) as telegram, FakeVLLM(answer=ANSWER) as vllm:
        gateway = await start_gateway(vllm.url, key_file, port)
        env = bot_env(telegram.url, f"http://127.0.0.1:{port}", verify_key, tmp_path / "data")
        env |= {
            "VEIL_FREE_TOKENS_PER_DAY": "1000000",
            "VEIL_WEBAPP_URL": base,
            "VEIL_WEBAPP_PORT": str(webapp_port),
        }
        bot = await ManagedProcess.start("-m", "bot", env=env)
        try:
            await bot.wait_for_line("bot.started", within=60)
            page = await open_page(browser, page_url(base, init_data()))
            await ready(page)
            await answered(page, QUESTION)
            assert await gateway.stop() == 0
            gateway = await start_gateway(vllm.url, key_file, port)
            await ask(page, "And the red one?")
            ended = "#notice[data-status=complete], #notice[data-error]"
            await page.wait_for_selector(ended, timeout=30000)
            assert await page.get_attribute("#notice", "data-error") is None
            assert await page.inner_text("#answer") == ANSWER
            await page.context.close()
        finally:
            assert await bot.stop(within=60) == 0
            await gateway.stop()
    assert [request["messages"][-1]["content"] for request in vllm.requests] == [
        QUESTION,
        "And the red one?",
    ]
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "veil.db")) as db:
        outcomes = [row[0] for row in db.execute("SELECT outcome FROM holds ORDER BY rowid")]
    # Sealed to the old key, the question is refused (410) and released, then sealed again:
    # two answers charged, nothing for the refusal.
    assert outcomes.count("settled") == 2
    assert set(outcomes) <= {"settled", "released"}


async def test_a_gateway_that_breaks_after_the_pages_limit_is_not_told_as_the_time_limit(
    browser: Browser, tmp_path: Path
) -> None:
    # The model server took long to begin (its reply held on the way back), then its stream
    # broke before the bot's limit for one answer (counted once it began). The page, whose clock
    # had passed the limit since it sent the question, said the answer took longer than the bot
    # allows: the bot ended the page's stream whole for that cut as for its own limit.
    limit = 4.0
    async with webapp_stack(
        tmp_path, answer=SLOW_ANSWER, token_delay=0.2, max_answer_seconds=limit
    ) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()), Keychain())
        await ready(page)
        stack.to_gateway.hold_replies = b"POST /v1/sealed/chat"
        await ask(page, QUESTION)
        async with asyncio.timeout(15):
            await stack.to_gateway.replies_held.wait()
        await asyncio.sleep(
            limit + 0.5
        )  # the page's clock passes the limit; the bot's has not begun
        with capture_logs() as logs:
            stack.to_gateway.replies_released.set()
            async with asyncio.timeout(15):
                while not await page.inner_text("#answer"):  # noqa: ASYNC110 -- the DOM has no event here
                    await asyncio.sleep(0.05)
            await stack.to_gateway.drop()  # the model server's stream breaks
            await page.wait_for_selector("#notice[data-error]", timeout=15000)
        cuts = [e["cut"] for e in logs if e["event"] == "relay.settled"]
        assert cuts == ["ClientPayloadError"]  # (not the bot's limit: the premise holds)
        assert await page.get_attribute("#notice", "data-error") == "StreamTruncated"
        assert await page.inner_text("#answer")  # what came is kept
        assert await page.input_value("#question") == QUESTION
        await page.context.close()


async def test_an_answer_cut_at_the_time_limit_is_told_as_the_time_limit(
    browser: Browser, tmp_path: Path
) -> None:
    # The bot ends an answer that runs past VEIL_MAX_ANSWER_SECONDS. The page told it as "cut
    # off on the way", blaming the network for the bot's own limit.
    async with webapp_stack(
        tmp_path, answer=SLOW_ANSWER, token_delay=0.2, max_answer_seconds=1.0
    ) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()), Keychain())
        await ready(page)
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-error=TimeLimit]", timeout=15000)
        assert await page.inner_text("#notice") == (
            "The answer took longer than the bot allows one answer, and was cut off there. "
            "What came is kept, and your question is back in the input to send again."
        )
        shown = await page.inner_text("#answer")
        assert shown
        assert SLOW_ANSWER.startswith(shown)
        assert await page.input_value("#question") == QUESTION
        await page.context.close()
        rows = await stack.store.read(
            lambda db: db.execute("SELECT request_id FROM holds").fetchall()
        )
        state = await settled(stack, bytes.fromhex(rows[0][0]))
        assert state.charge is not None
        assert (state.charge.outcome, state.charge.receipt_status) == ("settled", "stopped")


# The page's monotonic clock stands still (as a phone's may while the app sleeps in the
# background): only what the bot says can tell the page why its answer ended.
FROZEN_PAGE_CLOCK = "performance.now = () => 1000;"


async def test_an_answer_cut_at_the_time_limit_is_told_so_whatever_the_pages_clock_says(
    browser: Browser, tmp_path: Path
) -> None:
    # The page told an answer cut at the bot's limit for one answer by its own clock: the time
    # since it sent the question. A page whose clock had not run that long (a phone asleep in
    # between) said the answer was cut off on the way, blaming the network for the bot's limit.
    async with webapp_stack(
        tmp_path, answer=SLOW_ANSWER, token_delay=0.2, max_answer_seconds=1.0
    ) as stack:
        context = await browser.new_context(viewport={"width": 420, "height": 800})
        await context.expose_function("fakeKeychain", Keychain().answer)
        await context.add_init_script(FAKE_TELEGRAM_APP + FROZEN_PAGE_CLOCK)
        page = await context.new_page()
        await page.goto(page_url(stack.base, init_data()))
        await ready(page)
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-error]", timeout=15000)
        assert await page.get_attribute("#notice", "data-error") == "TimeLimit"
        assert await page.input_value("#question") == QUESTION
        await context.close()


async def test_an_answer_cut_at_the_time_limit_before_its_text_does_not_say_a_part_was_kept(
    browser: Browser, tmp_path: Path
) -> None:
    # The model was still thinking when the bot's limit for one answer cut it: no text had
    # come, so nothing was kept, yet the page said "What came is kept".
    thinking = " ".join(f"step{i}" for i in range(100))
    async with webapp_stack(
        tmp_path,
        answer=f"<think>\n{thinking}\n</think>\n\n{ANSWER}",
        token_delay=0.2,
        max_answer_seconds=1.0,
    ) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()), Keychain())
        await ready(page)
        await ask(page, QUESTION)
        await page.wait_for_selector("#notice[data-error=TimeLimit]", timeout=15000)
        assert await page.inner_text("#notice") == (
            "The answer took longer than the bot allows one answer, and was cut off there "
            "before any of its text came. Your question is back in the input to send again."
        )
        assert await page.input_value("#question") == QUESTION
        assert await page.locator("#answer").count() == 0  # (its thinking stays shown)
        assert await page.locator("details.thinking").count() == 1
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble").count() == 0  # nothing was kept
        await page.context.close()


async def test_an_answer_cut_by_the_bots_shutdown_after_the_pages_limit_is_not_told_as_it(
    browser: Browser, tmp_path: Path
) -> None:
    # The model server took long to begin (its reply held on the way back), then the bot shut
    # down while the answer came. The page, whose clock had passed the bot's limit for one
    # answer since it sent the question, said the answer took longer than the bot allows: the
    # bot ended the page's stream whole for its shutdown as for its own limit.
    limit = 4.0
    async with webapp_stack(
        tmp_path, answer=SLOW_ANSWER, token_delay=0.2, max_answer_seconds=limit
    ) as stack:
        relay = stack.veil.relay
        assert relay is not None
        page = await open_page(browser, page_url(stack.base, init_data()), Keychain())
        await ready(page)
        stack.to_gateway.hold_replies = b"POST /v1/sealed/chat"
        await ask(page, QUESTION)
        async with asyncio.timeout(15):
            await stack.to_gateway.replies_held.wait()
        await asyncio.sleep(
            limit + 0.5
        )  # the page's clock passes the limit; the bot's has not begun
        with capture_logs() as logs:
            stack.to_gateway.replies_released.set()
            async with asyncio.timeout(15):
                while not await page.inner_text("#answer"):  # noqa: ASYNC110 -- the DOM has no event here
                    await asyncio.sleep(0.05)
            await relay.close()  # the bot shuts down
            await page.wait_for_selector("#notice[data-error]", timeout=15000)
        cuts = [e["cut"] for e in logs if e["event"] == "relay.settled"]
        assert cuts == ["shutdown"]  # (the bot's shutdown, not its limit: the premise holds)
        assert await page.get_attribute("#notice", "data-error") == "StreamTruncated"
        assert await page.inner_text("#notice") == (
            "The answer was cut off on the way (the connection was lost, or the bot restarted). "
            "What came is kept, and your question is back in the input to send again."
        )
        assert await page.inner_text("#answer")  # what came is kept
        assert await page.input_value("#question") == QUESTION
        await page.context.close()


async def test_a_model_named_beyond_latin_1_is_asked_and_answered(
    browser: Browser, tmp_path: Path
) -> None:
    # An HTTP header holds Latin-1 at most: the page put the model's name in one as it was, and
    # the browser refused to send the request at all, which the page told as a network failure.
    model = "Модель-café-7B"
    async with webapp_stack(tmp_path, answer=ANSWER, models=(model,)) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()), Keychain())
        await ready(page)
        assert await page.input_value("#model") == model
        await answered(page, QUESTION)
        assert await page.inner_text("#answer") == ANSWER
        await page.context.close()
    assert stack.vllm.requests[0]["model"] == model


async def test_an_exchange_kept_by_another_page_is_shown_on_this_one_before_it_goes_as_context(
    browser: Browser, tmp_path: Path
) -> None:
    # Two pages of one device share one history, and each sends it as its next question's
    # context: the second page sent the first page's exchange to the model without ever showing
    # it. Each page shows what the other kept, as soon as it is kept, in the order it was.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context, first, second = await two_pages(browser, stack, keychain)
        await answered(first, QUESTION)
        await second.wait_for_selector(".bubble.user", timeout=15000)
        assert await second.locator(".bubble").all_inner_texts() == [QUESTION, ANSWER]
        await answered(second, "And the red one?")
        expected = [QUESTION, ANSWER, "And the red one?", ANSWER]
        assert await second.locator(".bubble").all_inner_texts() == expected
        async with asyncio.timeout(15):  # (the first page's storage event)
            while await first.locator(".bubble").count() < len(expected):  # noqa: ASYNC110 -- polled from outside the page
                await asyncio.sleep(0.05)
        assert await first.locator(".bubble").all_inner_texts() == expected
        await context.close()
    assert [m["content"] for m in stack.vllm.requests[1]["messages"]] == expected[:3]


async def test_a_long_answer_is_added_to_the_screen_piece_by_piece_never_set_again_whole(
    browser: Browser, tmp_path: Path
) -> None:
    # Each record set the answer's whole text again: the page did work growing with the square
    # of a long answer's length. Each piece is now added to what is shown.
    answer = " ".join(f"piece{i}" for i in range(200))
    async with webapp_stack(tmp_path, answer=answer) as stack:
        page = await open_page(browser, page_url(stack.base, init_data()), Keychain())
        await ready(page)
        await page.evaluate(
            """() => {
              window.textReplaced = 0;
              window.textAdded = 0;
              new MutationObserver((records) => {
                for (const record of records) {
                  if (!record.target.classList?.contains("assistant")) continue;
                  window.textReplaced += record.removedNodes.length;
                  window.textAdded += record.addedNodes.length;
                }
              }).observe(document.getElementById("messages"), { childList: true, subtree: true });
            }"""
        )
        await answered(page, QUESTION)
        assert await page.inner_text("#answer") == answer
        assert await page.evaluate("window.textAdded") > 1  # (it came in pieces)
        assert await page.evaluate("window.textReplaced") == 0
        await page.context.close()
    assert stack.vllm.requests


# The device's storage stops taking writes once ``window.writesBeforeCrash`` more are done: as
# after a crash, nothing the page meant to write after them is there.
CRASH_AFTER_WRITES = """
window.writesBeforeCrash = null;
for (const name of ["setItem", "removeItem"]) {
  const real = Storage.prototype[name];
  Storage.prototype[name] = function (...args) {
    if (window.writesBeforeCrash === 0) return;
    real.apply(this, args);
    if (window.writesBeforeCrash !== null) window.writesBeforeCrash -= 1;
  };
}
"""


@pytest.mark.parametrize("script", ["", NO_WEB_LOCKS], ids=["web_locks", "no_web_locks"])
@pytest.mark.parametrize("writes", [1, 2])
async def test_a_forget_cut_short_between_its_writes_does_not_bring_the_history_back(
    browser: Browser, tmp_path: Path, script: str, writes: int
) -> None:
    # Forget removed the ciphertext, then wrote its mark. A page that crashed between the two
    # (or another page reading between them) left "no history, old mark", and the key still
    # in the keychain: the other page of the device, holding the erased exchange, took that
    # for a history not yet written and wrote the erased exchange back with its next one,
    # sending it to the model as context again.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context, first, second = await two_pages(
            browser, stack, keychain, script + CRASH_AFTER_WRITES
        )
        await answered(first, QUESTION)
        await second.wait_for_selector(".bubble.user", timeout=15000)  # it holds the exchange
        keychain.hold = crashed = asyncio.Event()  # the key is never removed: the page dies
        await first.evaluate(f"window.writesBeforeCrash = {writes}")
        await first.click("#about-title")
        await first.click("#forget")
        async with asyncio.timeout(15):
            await keychain.removing.wait()
        await first.close()
        keychain.hold = None
        await answered(second, "And the red one?")
        assert await second.locator(".bubble.user").all_inner_texts() == ["And the red one?"]
        await second.reload()
        await ready(second)
        assert await second.locator(".bubble.user").all_inner_texts() == ["And the red one?"]
        await context.close()
        crashed.set()
    assert [m["content"] for m in stack.vllm.requests[1]["messages"]] == ["And the red one?"]


async def opened_or_waiting(page: Page, keychain: Keychain) -> bool:
    """Whether ``page`` is ready, or waits for a Forget on another page (the lock, the key)."""
    if await page.get_attribute("body", "data-ready") == "true":
        return True
    return keychain.removals_held > 1 or await pending_locks(page) > 0


async def shown_or_told(page: Page, question: str, told: str) -> bool:
    """Whether ``page`` shows ``question`` asked on another page, or its notice says ``told``."""
    if told in await page.inner_text("#notice"):
        return True
    return question in await page.locator(".bubble.user").all_inner_texts()


@pytest.mark.parametrize("script", ["", NO_WEB_LOCKS], ids=["web_locks", "no_web_locks"])
async def test_a_page_opened_while_another_forgets_keeps_its_exchanges_or_says_so(
    browser: Browser, tmp_path: Path, script: str
) -> None:
    # Without Web Locks: a page opened while Forget on another page was removing the key (the
    # keychain slow) read that key, still there, and kept its exchange under it. Once removed,
    # the Forget's page made a new key and wrote over that ciphertext, unreadable to it; the
    # exchange was gone from the device and from the screen, and nothing said so.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context = await browser.new_context(viewport={"width": 420, "height": 800})
        await context.expose_function("fakeKeychain", keychain.answer)
        await context.add_init_script(FAKE_TELEGRAM_APP + script)
        first = await context.new_page()
        await first.goto(page_url(stack.base, init_data()))
        await ready(first)
        await answered(first, QUESTION)
        keychain.hold = asyncio.Event()
        await first.click("#about-title")
        await first.click("#forget")
        async with asyncio.timeout(15):
            await keychain.removing.wait()
        second = await context.new_page()
        await second.goto(page_url(stack.base, init_data()))
        async with asyncio.timeout(15):
            while not await opened_or_waiting(second, keychain):  # noqa: ASYNC110 -- polled from outside the page
                await asyncio.sleep(0.02)
        if await second.get_attribute("body", "data-ready") == "true":
            await answered(second, "And the red one?")  # kept while the key is being removed
            keychain.hold.set()
        else:  # it waits for the removal
            keychain.hold.set()
            await ready(second)
            await answered(second, "And the red one?")
        await first.wait_for_selector("#notice[data-kind=forgotten]", timeout=15000)
        await answered(first, "And the green one?")
        told = "key on this device was changed"
        async with asyncio.timeout(15):  # the other page's exchange shown, or the loss told
            while not await shown_or_told(second, "And the green one?", told):  # noqa: ASYNC110 -- polled from outside the page
                await asyncio.sleep(0.02)
        lost_and_told = told in await second.inner_text("#notice")
        await second.reload()
        await ready(second)
        kept = await second.locator(".bubble.user").all_inner_texts()
        await context.close()
    assert lost_and_told or kept == ["And the red one?", "And the green one?"]


# Older Safari with cookies blocked: the very get of ``localStorage`` throws.
BLOCKED_STORAGE = """
Object.defineProperty(window, "localStorage", {
  configurable: true,
  get() {
    throw new DOMException("The operation is insecure.", "SecurityError");
  },
});
"""


async def test_a_browser_that_refuses_the_page_its_storage_answers_and_says_nothing_is_saved(
    browser: Browser, tmp_path: Path
) -> None:
    # The page read localStorage as it began: the SecurityError stopped it before it was ready,
    # and no question could be asked.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context = await browser.new_context(viewport={"width": 420, "height": 800})
        await context.expose_function("fakeKeychain", keychain.answer)
        await context.add_init_script(FAKE_TELEGRAM_APP + BLOCKED_STORAGE)
        page = await context.new_page()
        await page.goto(page_url(stack.base, init_data()))
        await ready(page)
        assert "does not let the page store anything" in await page.inner_text("#notice")
        await answered(page, QUESTION)
        assert await page.locator(".bubble").all_inner_texts() == [QUESTION, ANSWER]
        await answered(page, "And the red one?")
        await page.reload()
        await ready(page)
        assert "does not let the page store anything" in await page.inner_text("#notice")
        assert await page.locator(".bubble").count() == 0
        await context.close()
    assert keychain.values == {}  # no key made for a history that cannot be kept
    assert [m["content"] for m in stack.vllm.requests[1]["messages"]] == [
        QUESTION,
        ANSWER,
        "And the red one?",
    ]


async def test_a_keychain_value_that_is_not_a_32_byte_key_is_replaced_and_answers_kept(
    browser: Browser, tmp_path: Path
) -> None:
    # The keychain held a value under the history key's name that is no 32-byte key (another
    # app version's, a damaged keychain). The page took it as the key: each answer, once
    # shown, failed to be sealed for keeping and was told as a network failure, and nothing
    # was ever kept.
    keychain = Keychain()
    keychain.values["veil_history_key"] = b64e(bytes(range(16)))
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await ready_page(browser, stack, keychain)
        await answered(page, QUESTION)
        assert await page.get_attribute("#notice", "data-error") is None
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble").all_inner_texts() == [QUESTION, ANSWER]
        await page.context.close()
    assert len(base64.urlsafe_b64decode(keychain.values["veil_history_key"] + "==")) == 32


async def test_a_damaged_history_on_the_device_is_told_as_unreadable_not_kept(
    browser: Browser, tmp_path: Path
) -> None:
    # The ciphertext in the device's storage was damaged (one character changed). The page
    # opened with an empty history and said the history was kept, then wrote over it: the
    # exchanges it had said it kept were gone without a word.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await ready_page(browser, stack, keychain)
        await answered(page, QUESTION)
        damage = f"""
          const text = localStorage.getItem({HISTORY_SLOT!r});
          const i = text.length - 5;
          localStorage.setItem({HISTORY_SLOT!r},
            text.slice(0, i) + (text[i] === "A" ? "B" : "A") + text.slice(i + 1));
        """
        await page.evaluate(damage)
        await page.reload()
        await ready(page)
        assert "could not be read" in await page.inner_text("#notice")
        assert await page.locator(".bubble").count() == 0
        await answered(page, "And the red one?")
        await page.reload()
        await ready(page)
        assert "could not be read" not in await page.inner_text("#notice")
        assert await page.locator(".bubble").all_inner_texts() == ["And the red one?", ANSWER]
        await page.context.close()


async def test_a_forget_cut_short_in_an_app_without_a_keychain_is_not_due_for_ever(
    browser: Browser, tmp_path: Path
) -> None:
    # A Forget writes its removal due before it asks the keychain to remove the key. In an app
    # without a keychain (Telegram Desktop, the web apps) a page closed while that request was
    # out left the removal due; every later opening tried it, was refused (UNSUPPORTED), left
    # it due, and said the keychain had kept the key: for ever, and no Forget of its could end
    # what the next opening brought back.
    keychain = Keychain()
    keychain.unsupported = True
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await ready_page(browser, stack, keychain)
        # What the Forget left before the page went: its removal due and its mark.
        await page.evaluate(
            f"localStorage.setItem({HISTORY_SLOT + ':forget'!r}, '1');"
            f"localStorage.setItem({HISTORY_SLOT + ':forgotten'!r}, 'bWFyaw')"
        )
        for _ in range(2):
            await page.reload()
            await ready(page)
            assert "history is not saved" in await page.inner_text("#notice")
            assert "kept" not in await page.inner_text("#notice")
        assert await page.evaluate(f"localStorage.getItem({HISTORY_SLOT + ':forget'!r})") is None
        await page.context.close()


async def test_a_page_reloaded_mid_answer_says_so_when_it_opens_again(
    browser: Browser, tmp_path: Path
) -> None:
    # A page closed while its answer came (a reload, the app swiped away) kept nothing of it,
    # though the bot charged what the model wrote; the page opened next said nothing of it.
    # Now the page notes that an answer is out (that alone: nothing of it) while it is, and
    # the next page opened on the device tells it once; a page opened beside one whose answer
    # is still coming does not.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=SLOW_ANSWER, token_delay=0.08) as stack:
        context, first, second = await two_pages(browser, stack, keychain)
        await ask(first, QUESTION)
        async with asyncio.timeout(15):
            while len(await first.inner_text("#answer")) <= 20:  # noqa: ASYNC110 -- the DOM has no event here
                await asyncio.sleep(0.05)
        stored = await first.evaluate(
            "Object.keys(localStorage).map((k) => k + '=' + localStorage.getItem(k)).join(' ')"
        )
        assert f"{HISTORY_SLOT}:asking:" in stored
        for piece in (QUESTION[:12], SLOW_ANSWER[:12], "piece"):
            assert piece not in stored
        await second.reload()  # opened while the first page's answer still comes
        await ready(second)
        assert "was last closed" not in await second.inner_text("#notice")
        await first.reload()
        await ready(first)
        assert (
            "An answer was still coming when this page was last closed"
            in await first.inner_text("#notice")
        )
        assert await first.locator(".bubble").count() == 0
        await first.reload()
        await ready(first)
        assert "was last closed" not in await first.inner_text("#notice")
        assert ":asking:" not in await first.evaluate("Object.keys(localStorage).join(' ')")
        await context.close()
        rows = await stack.store.read(
            lambda db: db.execute("SELECT request_id FROM holds").fetchall()
        )
        state = await settled(stack, bytes.fromhex(rows[0][0]))
        assert state.charge is not None
        assert state.charge.completion_tokens > 0  # charged, as the page says


@pytest.mark.parametrize("script", ["", NO_WEB_LOCKS], ids=["web_locks", "no_web_locks"])
async def test_forget_on_a_full_storage_still_writes_its_mark_and_destroys_the_key(
    browser: Browser, tmp_path: Path, script: str
) -> None:
    # A Forget's first writes (its removal due, its new mark) come before its erase: on a
    # storage filled to the byte they have no room until the erase makes some. The Forget
    # still destroys the key and leaves its mark (what keeps the other page from writing the
    # erased exchange back), and nothing of it stays due.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context, first, _other = await two_pages(browser, stack, keychain, script)
        await answered(first, QUESTION)
        old_key = keychain.values["veil_history_key"]
        mark_slot = HISTORY_SLOT + ":forgotten"
        old_mark = await first.evaluate(f"localStorage.getItem({mark_slot!r})")
        assert await first.evaluate(FILL_STORAGE) > 0
        await first.click("#about-title")
        await first.click("#forget")
        await first.wait_for_selector("#notice[data-kind=forgotten]", timeout=15000)
        assert await first.inner_text("#notice") == "History erased: its key is destroyed."
        assert await first.evaluate(f"localStorage.getItem({mark_slot!r})") not in (None, old_mark)
        assert await first.evaluate(f"localStorage.getItem({HISTORY_SLOT + ':forget'!r})") is None
        assert keychain.values["veil_history_key"] != old_key
        await context.close()


class SlowThenRefusingKeychain(Keychain):
    """A keychain whose first removal answers only once ``release`` is set, and then fails."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.first_removal = True

    async def answer(self, method: str, payload: dict[str, Any]) -> list[Any]:
        """Answer one SecureStorage request event: the first removal slowly, with a failure."""
        removal = method == "web_app_secure_storage_save_key" and payload["value"] is None
        if removal and self.first_removal:
            self.first_removal = False
            self.removing.set()
            await self.release.wait()
            return ["secure_storage_failed", {"req_id": payload["req_id"], "error": "TIMEOUT"}]
        return await super().answer(method, payload)


async def test_a_forget_refused_after_another_page_removed_the_key_leaves_nothing_due(
    browser: Browser, tmp_path: Path
) -> None:
    # Without Web Locks a page opened while another page's Forget waits on a slow keychain
    # finds the removal due, removes the key itself, clears the due and makes a new key, under
    # which it keeps its answers. When the keychain then failed the first page's removal, that
    # page wrote the removal due again: the next page opened removed the new key, and the
    # answers kept under it were lost (told as unreadable), for a key already gone.
    keychain = SlowThenRefusingKeychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        context = await browser.new_context(viewport={"width": 420, "height": 800})
        await context.expose_function("fakeKeychain", keychain.answer)
        await context.add_init_script(FAKE_TELEGRAM_APP + NO_WEB_LOCKS)
        first = await context.new_page()
        await first.goto(page_url(stack.base, init_data()))
        await ready(first)
        await answered(first, QUESTION)
        await first.click("#about-title")
        await first.click("#forget")
        await asyncio.wait_for(keychain.removing.wait(), 15)  # the first page's removal
        second = await context.new_page()
        await second.goto(page_url(stack.base, init_data()))
        await ready(second)
        await answered(second, "And the red one?")
        keychain.release.set()
        await first.wait_for_selector("#notice[data-kind=forgotten]", timeout=15000)
        assert await first.inner_text("#notice") == "History erased: its key is destroyed."
        await second.reload()
        await ready(second)
        assert "could not be read" not in await second.inner_text("#notice")
        assert await second.locator(".bubble").all_inner_texts() == ["And the red one?", ANSWER]
        await context.close()


async def test_a_keychain_that_does_not_answer_at_open_is_not_told_as_none(
    browser: Browser, tmp_path: Path
) -> None:
    # A keychain slow to answer (past the page's wait) or failing when the page opened left it
    # keeping nothing, the history saved before not shown, and told as an app with no secure
    # storage at all: the user, with a history on the device, had no hint that reopening
    # brings it back.
    keychain = Keychain()
    async with webapp_stack(tmp_path, answer=ANSWER) as stack:
        page = await answered_page(browser, stack, keychain)
        keychain.hold_reads = asyncio.Event()
        keychain.reads_to_hold = 1
        await page.reload()
        await ready(page)
        notice = await page.inner_text("#notice")
        assert "did not answer" in notice
        assert "has no secure storage" not in notice
        assert await page.locator(".bubble").count() == 0
        keychain.hold_reads.set()
        await page.reload()
        await ready(page)
        assert await page.locator(".bubble").all_inner_texts() == [QUESTION, ANSWER]
        await page.context.close()
