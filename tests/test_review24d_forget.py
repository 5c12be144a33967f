"""/forget pressed on two confirmations while an answer is written, and the user goes on.

twice24 made a user's erasures run one after the other: the second press waits for the first
erasure to end. It waited before its erasure had begun, so the user's next updates, held in
order behind that press (``bot.order``), waited with it: a question was not told "I'm erasing
your history", a payment sent meanwhile was neither booked nor thanked, until the answer the
first erasure waits for had ended (a flood wait: up to the order's 90 s patience).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.botstack import running_stack
from tests.harness import wait_until
from tests.test_bot_payments import STAR, buy_pack, pre_checkout

if TYPE_CHECKING:
    from pathlib import Path

USER = 2426
ANSWER = " ".join(f"fern{i}" for i in range(30))
PAUSE_AT = 10  # the fake model waits after this many tokens
FLOOD_S = 15  # the stopped answer's final message waits this long (Telegram's flood control)


async def test_a_second_erasure_waiting_holds_none_of_the_users_updates(tmp_path: Path) -> None:
    async with running_stack(tmp_path, answer=ANSWER, star_packs="50:50000000") as stack:
        texts = stack.veil.catalogs.for_language("en")
        stack.telegram.send_text(USER, "first words")
        await stack.final_messages(USER, 1)
        assert await stack.veil.chat.wait_idle(30)
        invoice = await buy_pack(stack, USER)
        assert (await pre_checkout(stack, USER, invoice["payload"], 50))["ok"] is True
        stack.telegram.send_text(USER, "/forget")  # from the phone
        stack.telegram.send_text(USER, "/forget")  # from the laptop
        await wait_until(
            lambda: (
                sum(
                    m.get("text") == texts("forget_confirm")
                    for m in stack.telegram.sent_messages(USER)
                )
                == 2
            ),
            within=10,
        )
        phone, laptop = [
            m
            for m in stack.telegram.sent_messages(USER)
            if m.get("text") == texts("forget_confirm")
        ]
        stack.vllm.pauses = {PAUSE_AT}
        stack.telegram.send_text(USER, "a question")
        await wait_until(lambda: stack.vllm.paused >= 1, within=10)
        # The stopped answer's final message is the next sendMessage: it waits out a flood.
        stack.telegram.fail_next(
            "sendMessage", status=429, description="Too Many Requests", retry_after=FLOOD_S
        )
        try:
            for confirmation in (phone, laptop):
                erase = confirmation["reply_markup"]["inline_keyboard"][0][0]
                stack.telegram.press_button(
                    USER, erase["callback_data"], message_id=confirmation["message_id"]
                )
            await stack.answered_presses(2)
            # The stopped answer's final message waits out the flood: so does the erasure.
            stack.telegram.send_text(USER, "are you there?")
            stack.telegram.pay(USER, payload=invoice["payload"], total_amount=50)
            await stack.telegram.wait_for(
                "sendMessage", lambda c: c.params.get("text") == texts("erasing"), timeout=10
            )
            await stack.telegram.wait_for(
                "sendMessage",
                lambda c: str(c.params.get("text")).startswith("Thank you"),
                timeout=10,
            )
            said = [m.get("text") for m in stack.telegram.sent_messages(USER)]
            assert texts("forget_nothing") not in said  # the first erasure still waits
        finally:
            stack.vllm.pauses = set()
            stack.vllm.resume()
        await wait_until(
            lambda: all(
                m.get("text") != texts("forget_confirm")
                for m in stack.telegram.sent_messages(USER)
                if m["message_id"] in {phone["message_id"], laptop["message_id"]}
            ),
            within=30,
        )
        assert await stack.veil.chat.wait_idle(30)
        # The payment booked while the erasure waited is money, kept through it.
        assert (await stack.veil.credit.balance(USER)).units == 50 * STAR
    said_to = {m["message_id"]: m.get("text") for m in stack.telegram.sent_messages(USER)}
    assert said_to[laptop["message_id"]] == texts("forget_nothing")
