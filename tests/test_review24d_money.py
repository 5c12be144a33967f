"""An invoice's "being paid" window (twice24's ``PAYING_S``) against the retries it may refuse.

Pre-checkout refuses an order approved less than a minute ago, so the same invoice paid on two
devices at once is charged once. An approval that never reached Telegram opens no payment: the
bot answered too late (Telegram refused the answer as too old and failed the payment on the
user's screen) or its answer was held by a flood wait. The user who then tapped Pay again was
told "This invoice is being paid already" for a minute, though nothing was on its way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models import MasterKey, Store
from playground.state import QUERY_TOO_OLD
from services.shop import PAYING_S, Pack, Shop
from tests.harness import Clock
from tests.test_bot_payments import STAR, USER, balance_units, buy_pack, paying_stack, pre_checkout

if TYPE_CHECKING:
    from pathlib import Path


async def test_a_retry_after_an_approval_telegram_refused_is_approved(tmp_path: Path) -> None:
    async with paying_stack(tmp_path) as stack:
        invoice = await buy_pack(stack, USER)
        # The bot's approval reaches Telegram too late: refused, the payment failed.
        stack.telegram.fail_next(
            "answerPreCheckoutQuery", status=400, description=f"Bad Request: {QUERY_TOO_OLD}"
        )
        late = await pre_checkout(stack, USER, invoice["payload"], 50)
        assert late["ok"] is True  # what the bot said, too late
        again = await pre_checkout(stack, USER, invoice["payload"], 50)  # Pay tapped again
        assert again["ok"] is True, again.get("error_message")
        stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
        await stack.telegram.wait_for("sendMessage", lambda c: "Thank you" in c.params["text"])
        assert await balance_units(stack, USER) == 50 * STAR


async def test_the_window_outlives_a_restart(tmp_path: Path) -> None:
    # The approval is on the order in the database: a bot restarted inside the minute (a
    # second device paying meanwhile) still refuses, and lets it be paid after.
    clock = Clock(1_750_000_000)
    key = MasterKey.generate()
    store = await Store.open(tmp_path / "veil.db", key)
    try:
        shop = Shop(store, Pack.parse_list("50:50000000"), clock=clock)
        order = await shop.create_order(USER, "50")
        assert await shop.check_pre_checkout(USER, order.id, "XTR", 50) is None
    finally:
        await store.close()
    clock.advance(PAYING_S // 2)
    store = await Store.open(tmp_path / "veil.db", key)
    try:
        shop = Shop(store, Pack.parse_list("50:50000000"), clock=clock)
        assert await shop.check_pre_checkout(USER, order.id, "XTR", 50) == "being_paid"
        clock.advance(PAYING_S // 2)
        assert await shop.check_pre_checkout(USER, order.id, "XTR", 50) is None
    finally:
        await store.close()


async def test_an_approval_by_a_clock_ahead_holds_a_retry_no_longer_than_a_minute(
    tmp_path: Path,
) -> None:
    # The approval was stamped by a clock ten minutes ahead (another replica's, or this one's
    # before NTP stepped it back): the window was judged from a time still to come, and Pay
    # tapped again after a failed payment was refused for eleven minutes, not one.
    clock = Clock(1_750_000_000)
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        shop = Shop(store, Pack.parse_list("50:50000000"), clock=clock)
        phone = await shop.create_order(USER, "50")
        laptop = await shop.create_order(USER, "50")
        assert await shop.check_pre_checkout(USER, phone.id, "XTR", 50) is None
        assert await shop.check_pre_checkout(USER, laptop.id, "XTR", 50) is None
        clock.advance(-600)  # the clock set right
        assert await shop.check_pre_checkout(USER, phone.id, "XTR", 50) is None
        # A few seconds behind (replicas on NTP) is still the window: paid on two devices.
        clock.advance(600 - 5)
        assert await shop.check_pre_checkout(USER, laptop.id, "XTR", 50) == "being_paid"
    finally:
        await store.close()
