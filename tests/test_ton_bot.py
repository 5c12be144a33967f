"""Paying in Gram and USDT end to end: fake Telegram ← bot → fake toncenter, real SQLite.

/buy shows the Gram and USDT packs; a pack button sends the invoice (address, amount, comment,
expiry, the ton:// link, a Tonkeeper button) and a QR code that a real decoder reads back as
the ton:// link; the payment on the (fake) chain is credited once and the user told; a restart
in the middle of a page neither misses nor repeats a credit; admins see and assign unmatched
payments; a slow toncenter never slows the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import time
from typing import TYPE_CHECKING, Any

import zxingcpp
from PIL import Image

from bot.telegram import build_bot
from common.texts import Catalogs
from handlers.ton import TonNotifier
from models.ton import TonPayment
from services.ton.books import TonBooking
from tests.books import inconsistent_users
from tests.botstack import TOKEN, Stack, running_stack
from tests.fakes.gated import GatedTelegram
from tests.fakes.hostile import HostileTelegram
from tests.fakes.toncenter import USDT_MASTER, FakeToncenter, hex_hash
from tests.tonstack import WALLET, WALLET_RAW

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

ALICE, BOB, CAROL, ADMIN = 7001, 7002, 7003, 7999
GRAM = 1_000_000_000
COMMENT = re.compile(r"Comment: ([A-Z0-9]{8})")
# The line a notice of a payment beside its order's own ends with (fix30a).
QUIET_GRAM = (
    "Further payments under 0.1 GRAM naming this order are credited without a message, unless"
    " one completes it: /balance shows them."
)


@contextlib.asynccontextmanager
async def ton_bot(
    data_dir: Path,
    chain: FakeToncenter,
    **settings: Any,  # noqa: ANN401 -- BotSettings overrides
) -> AsyncIterator[tuple[Stack, GatedTelegram]]:
    """The whole bot with Gram and USDT payments on, watching ``chain`` every 50 ms."""
    telegram = GatedTelegram(token=TOKEN)
    options: dict[str, Any] = {
        "ton_address": WALLET.bounceable,
        "ton_usdt": True,
        "toncenter_url": chain.url,
        "toncenter_key": "test-toncenter-key",
        "ton_poll_interval": 0.05,
        "ton_packs": "1000000000:250000000,5000000000:1300000000",
        "ton_usdt_packs": "1000000:70000000",
        "free_tokens_per_day": 0,
        "admins": str(ADMIN),
    }
    async with running_stack(data_dir, telegram_server=telegram, **(options | settings)) as stack:
        yield stack, telegram
        assert await inconsistent_users(stack.veil.store) == []


async def buy(
    stack: Stack, telegram: GatedTelegram, user: int, label: str, language: str = "en"
) -> dict[str, Any]:
    """/buy, press the button whose text starts with ``label``; the invoice message."""
    before = len(telegram.sent_messages(user))
    telegram.send_text(user, "/buy", language_code=language)
    messages = await stack.final_messages(user, before + 1)
    menu = messages[before]
    buttons = [row[0] for row in menu["reply_markup"]["inline_keyboard"]]
    (button,) = [b for b in buttons if b["text"].startswith(label)]
    photos = len(telegram.photos.get(user, []))
    telegram.press_button(
        user, button["callback_data"], message_id=menu["message_id"], language_code=language
    )
    async with asyncio.timeout(10):
        while len(telegram.photos.get(user, [])) <= photos:  # noqa: ASYNC110 -- the fake's record
            await asyncio.sleep(0.02)
    invoice, photo = telegram.sent_messages(user)[before + 1 : before + 3]
    assert "photo" in photo
    return invoice


def comment_of(invoice: dict[str, Any]) -> str:
    match = COMMENT.search(invoice["text"])
    assert match is not None, invoice["text"]
    return match.group(1)


async def told(stack: Stack, user: int, count: int) -> str:
    """Wait for the user's ``count``-th message; its text."""
    messages = await stack.final_messages(user, count)
    return str(messages[count - 1].get("text", ""))


async def test_buy_shows_gram_and_usdt_packs_and_the_invoice_scans_and_pays(
    tmp_path: Path,
) -> None:
    async with (
        FakeToncenter(api_key="test-toncenter-key") as chain,
        ton_bot(tmp_path, chain) as (stack, telegram),
    ):
        telegram.send_text(ALICE, "/buy")
        (menu,) = await stack.final_messages(ALICE, 1)
        labels = [row[0]["text"] for row in menu["reply_markup"]["inline_keyboard"]]
        assert labels[-3:] == [
            "1 GRAM → 250 ★ credit",
            "5 GRAM → 1300 ★ credit",
            "1 USDT (USDT on TON) → 70 ★ credit",
        ]
        invoice = await buy(stack, telegram, ALICE, "1 GRAM")
        text = invoice["text"]
        comment = comment_of(invoice)
        link = f"ton://transfer/{WALLET.friendly}?amount={GRAM}&text={comment}"
        assert WALLET.friendly in text
        assert "Amount: 1 GRAM" in text
        assert link in text
        # Address, amount, comment and link are each a tap-to-copy code entity.
        codes = {
            text[e["offset"] : e["offset"] + e["length"]]
            for e in invoice["entities"]
            if e["type"] == "code"
        }
        assert {WALLET.friendly, "1", comment, link} <= codes
        (button,) = invoice["reply_markup"]["inline_keyboard"][0]
        assert button["url"] == (
            f"https://app.tonkeeper.com/transfer/{WALLET.friendly}?amount={GRAM}&text={comment}"
        )
        # The QR code, read by a real decoder, is the ton:// link.
        (png,) = telegram.photos[ALICE]
        found = zxingcpp.read_barcodes(  # QR codes only (all formats once found a spurious one)
            Image.open(io.BytesIO(png)),
            formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode),
        )
        assert {code.text for code in found} == {link}

        tx = chain.add_transaction(WALLET_RAW, value=GRAM, comment=comment)
        # (menu, menu again, invoice, QR code, then:)
        assert await told(stack, ALICE, 5) == ("Received 1 GRAM. 250 ★ added. Balance: 250 ★.")
        telegram.send_text(ALICE, "/balance")
        assert (await told(stack, ALICE, 6)).startswith("Balance: 250 ★ of credit")
        balance = await stack.veil.credit.balance(ALICE)
        assert balance.units == 250_000_000
        assert chain.calls("/api/v3/transactions")
        assert {r.api_key for r in chain.requests} == {"test-toncenter-key"}
        # Redelivered pages change nothing.
        await asyncio.sleep(0.3)
        assert (await stack.veil.credit.balance(ALICE)).units == 250_000_000
        assert len(telegram.sent_messages(ALICE)) == 6
        assert stack.veil.ton_books is not None
        (payment,) = await stack.veil.ton_books.recorded()
        assert payment.hash == hex_hash(tx["hash"])


async def test_not_enough_credit_offers_the_gram_and_usdt_packs_and_they_sell(
    tmp_path: Path,
) -> None:
    async with FakeToncenter() as chain, ton_bot(tmp_path, chain) as (stack, telegram):
        telegram.send_text(ALICE, "Answer me for free")
        (note,) = await stack.final_messages(ALICE, 1)
        assert note["text"].startswith("Not enough credit for an answer")
        buttons = [row[0] for row in note["reply_markup"]["inline_keyboard"]]
        labels = [button["text"] for button in buttons]
        assert labels[0] == "50 ⭐ → 50 ★ credit"
        assert labels[-3:] == [
            "1 GRAM → 250 ★ credit",
            "5 GRAM → 1300 ★ credit",
            "1 USDT (USDT on TON) → 70 ★ credit",
        ]
        assert stack.vllm.requests == []
        # The USDT button under the notice sells like the one under /buy.
        telegram.press_button(ALICE, buttons[-1]["callback_data"], message_id=note["message_id"])
        async with asyncio.timeout(10):
            while not telegram.photos.get(ALICE):  # noqa: ASYNC110 -- the fake's record
                await asyncio.sleep(0.02)
        invoice = telegram.sent_messages(ALICE)[1]
        assert "1 USDT" in invoice["text"]
        assert comment_of(invoice)
        # A Gram pack no longer sold (an old button): the errors router's text, no order.
        telegram.press_button(ALICE, "gram:3000000000", message_id=note["message_id"])
        assert await told(stack, ALICE, 4) == (
            "That offer is no longer available. Please open /buy again."
        )
        assert len(telegram.photos[ALICE]) == 1


async def test_without_a_ton_address_no_gram_packs_and_their_old_buttons_are_refused(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, free_tokens_per_day=0) as stack:
        stack.telegram.send_text(ALICE, "/buy")
        (menu,) = await stack.final_messages(ALICE, 1)
        labels = [row[0]["text"] for row in menu["reply_markup"]["inline_keyboard"]]
        assert not [label for label in labels if "GRAM" in label or "USDT" in label]
        stack.telegram.send_text(ALICE, "Answer me for free")
        note = (await stack.final_messages(ALICE, 2))[1]
        assert note["text"].startswith("Not enough credit for an answer")
        assert [row[0]["text"] for row in note["reply_markup"]["inline_keyboard"]] == labels
        stack.telegram.press_button(ALICE, "gram:1000000000", message_id=menu["message_id"])
        assert await told(stack, ALICE, 3) == (
            "That offer is no longer available. Please open /buy again."
        )
        assert stack.veil.ton_books is None


async def test_underpaid_usdt_in_russian_says_what_arrived_and_what_is_left(
    tmp_path: Path,
) -> None:
    async with FakeToncenter() as chain, ton_bot(tmp_path, chain) as (stack, telegram):
        telegram.send_text(BOB, "/start", language_code="ru")
        await stack.final_messages(BOB, 1)
        invoice = await buy(stack, telegram, BOB, "1 USDT", language="ru")
        assert "Комментарий:" in invoice["text"]
        comment = re.search(r"Комментарий: ([A-Z0-9]{8})", invoice["text"])
        assert comment is not None
        (button,) = invoice["reply_markup"]["inline_keyboard"][0]
        assert f"jetton={USDT_MASTER}" in button["url"]
        chain.add_jetton_transfer(WALLET_RAW, amount=400_000, comment=comment.group(1))
        text = await told(stack, BOB, 5)
        assert text == (
            f"Получено 0.4 USDT из 1 USDT по заказу {comment.group(1)}: начислено 28 ★ за то,"
            " что пришло. Чтобы получить весь пакет, 70 ★, отправьте оставшиеся 0.6 USDT"
            " с тем же комментарием. Баланс: 28 ★.\n"  # noqa: RUF001 -- Russian
            + Catalogs().for_language("ru")("ton_paid_quiet", floor="0.1 USDT")
        )


async def test_an_underpayment_told_after_the_rest_arrived_asks_for_nothing_more(
    tmp_path: Path,
) -> None:
    # Telegram could not take the notice of an underpayment; the rest arrived before it was
    # told, and the notice, sent then, asked the user to send "0 USDT" more (or a negative
    # amount, had they paid more) for an order paid in full.
    async with FakeToncenter() as chain, ton_bot(tmp_path, chain) as (stack, telegram):
        invoice = await buy(stack, telegram, CAROL, "1 USDT")
        comment = comment_of(invoice)
        # The first notice fails (a 502, and the session's one retry too); the second goes.
        telegram.fail_next("sendMessage", status=502, description="Bad Gateway", count=2)
        chain.add_jetton_transfer(WALLET_RAW, amount=400_000, comment=comment)
        chain.add_jetton_transfer(WALLET_RAW, amount=600_000, comment=comment)
        await told(stack, CAROL, 5)
        notices = [str(m.get("text", "")) for m in telegram.sent_messages(CAROL)[3:]]
        assert notices == [
            "Received 0.6 USDT. 42 ★ added. Balance: 70 ★.",
            "Received 0.4 USDT. 28 ★ added. Balance: 70 ★.",
        ]


async def test_a_restart_in_the_middle_of_a_page_credits_each_payment_once(
    tmp_path: Path,
) -> None:
    async with FakeToncenter() as chain:
        comments = {}
        async with ton_bot(tmp_path, chain) as (stack, telegram):
            for user in (ALICE, BOB, CAROL):
                comments[user] = comment_of(await buy(stack, telegram, user, "1 GRAM"))
            # Bob's message will hang: the bot stops while telling him, after crediting him,
            # with Carol's payment on the same page still to do and the cursor not saved.
            telegram.hold_messages_to(BOB)
            for user in (ALICE, BOB, CAROL):
                chain.add_transaction(WALLET_RAW, value=GRAM, comment=comments[user])
            async with asyncio.timeout(10):
                await telegram.holding.wait()
            ledger = stack.veil.credit
            assert (await ledger.balance(ALICE)).units == 250_000_000
            assert (await ledger.balance(BOB)).units == 250_000_000
            assert (await ledger.balance(CAROL)).units == 0
            assert await told(stack, ALICE, 4) == "Received 1 GRAM. 250 ★ added. Balance: 250 ★."
        async with ton_bot(tmp_path, chain) as (stack, telegram):
            # Bob and Carol are told (once), Alice is not told again; each credited once.
            assert await told(stack, CAROL, 1) == "Received 1 GRAM. 250 ★ added. Balance: 250 ★."
            assert await told(stack, BOB, 1) == "Received 1 GRAM. 250 ★ added. Balance: 250 ★."
            await asyncio.sleep(0.3)
            assert telegram.sent_messages(ALICE) == []
            assert len(telegram.sent_messages(BOB)) == len(telegram.sent_messages(CAROL)) == 1
            for user in (ALICE, BOB, CAROL):
                assert (await stack.veil.credit.balance(user)).units == 250_000_000


async def test_admins_see_unmatched_payments_in_stats_and_assign_them(tmp_path: Path) -> None:
    async with FakeToncenter() as chain, ton_bot(tmp_path, chain) as (stack, telegram):
        tx = chain.add_transaction(WALLET_RAW, value=2 * GRAM, comment="for Carol, sorry")
        assert stack.veil.ton_books is not None
        async with asyncio.timeout(10):
            while not await stack.veil.ton_books.unmatched():  # noqa: ASYNC110 -- the watcher
                await asyncio.sleep(0.02)
        tx_hash = hex_hash(tx["hash"])
        telegram.send_text(ADMIN, "/stats")
        stats = await told(stack, ADMIN, 1)
        assert "Unmatched: 1" in stats
        assert (
            f"{tx_hash[:16]} · 2 GRAM · comment for Carol, sorry · orders — · unknown_comment"
            in stats
        )
        telegram.send_text(CAROL, f"/tonassign {tx_hash[:12]} {CAROL}")  # not an admin
        assert (await told(stack, CAROL, 1)).startswith("I don't know /tonassign.")
        assert (await stack.veil.credit.balance(CAROL)).units == 0
        # No Telegram user has these ids: a group's (negative), none, one past any integer the
        # database holds, a superscript digit (str.isdigit says yes, int() says no), 2^52 (the
        # Bot API's ids have at most 52 significant bits; this one has 53).
        for count, user in enumerate((f"-{CAROL}", "0", "9" * 20, "\u00b2", str(2**52)), 2):
            telegram.send_text(ADMIN, f"/tonassign {tx_hash[:12]} {user}")
            assert (await told(stack, ADMIN, count)).startswith("Usage: /tonassign"), user
        telegram.send_text(ADMIN, f"/tonassign {tx_hash[:12]} {CAROL}")
        assert await told(stack, ADMIN, 7) == (
            f"Payment {tx_hash[:16]} (2 GRAM) credited to user {CAROL}: 500 ★. They will be told."
        )
        assert await told(stack, CAROL, 2) == (
            "Your payment of 2 GRAM has been matched to you by support: 500 ★ added."
            " Balance: 500 ★."
        )
        telegram.send_text(ADMIN, f"/tonassign {tx_hash[:12]} {CAROL}")
        assert await told(stack, ADMIN, 8) == (
            "That payment is not unmatched: it is credited already, or below the dust minimum."
        )
        telegram.send_text(ADMIN, "/tonassign nonsense")
        assert (await told(stack, ADMIN, 9)).startswith("Usage: /tonassign")
        assert (await stack.veil.credit.balance(CAROL)).units == 500_000_000


async def test_a_slow_or_failing_toncenter_never_slows_the_bot(tmp_path: Path) -> None:
    async with FakeToncenter(delay=30) as chain, ton_bot(tmp_path, chain) as (stack, telegram):
        await asyncio.sleep(0.2)  # the watcher is waiting on toncenter now
        async with asyncio.timeout(3):
            telegram.send_text(ALICE, "/balance")
            assert (await told(stack, ALICE, 1)).startswith("Balance: 0 ★ of credit")
            invoice = await buy(stack, telegram, ALICE, "1 GRAM")
            assert comment_of(invoice)


async def test_every_kind_of_transfer_end_to_end_through_telegram(tmp_path: Path) -> None:
    """Each case of the issue's list on one chain page, behind two 429s; users see the outcome."""
    users = {
        name: 7100 + n
        for n, name in enumerate(
            (
                "exact",
                "over",
                "twice",
                "nocomment",
                "aborted",
                "bounced",
                "unknown",
                "late",
                "dust",
                "forms",
                "usdt",
                "fakejetton",
            )
        )
    }
    async with FakeToncenter() as chain, ton_bot(tmp_path, chain) as (stack, telegram):
        comments = {}
        for name, user in users.items():
            label = "1 USDT" if name in {"usdt", "fakejetton"} else "1 GRAM"
            comments[name] = comment_of(await buy(stack, telegram, user, label))
        chain.rate_limit_next(2)
        add = chain.add_transaction
        add(WALLET_RAW, value=GRAM, comment=comments["exact"])
        add(WALLET_RAW, value=GRAM * 3 // 2, comment=comments["over"])
        add(WALLET_RAW, value=GRAM, comment=comments["twice"])
        twice = add(WALLET_RAW, value=GRAM, comment=comments["twice"])
        nocomment = add(WALLET_RAW, value=GRAM)
        add(WALLET_RAW, value=GRAM, comment=comments["aborted"], aborted=True)
        add(WALLET_RAW, value=GRAM, comment=comments["bounced"], bounced=True)
        unknown = add(WALLET_RAW, value=GRAM, comment="NOTANORDER")
        add(WALLET_RAW, value=GRAM, comment=comments["late"], now=int(time.time()) + 7200)
        dust = add(WALLET_RAW, value=1_000, comment=comments["dust"])
        for value, destination in (
            (GRAM // 4, WALLET.raw.upper()),
            (GRAM // 4, WALLET.friendly),
            (GRAM // 2, WALLET.bounceable),
        ):
            add(WALLET_RAW, value=value, comment=comments["forms"], destination=destination)
        chain.add_jetton_transfer(WALLET_RAW, amount=1_000_000, comment=comments["usdt"])
        chain.add_jetton_transfer(
            WALLET_RAW,
            amount=1_000_000,
            comment=comments["fakejetton"],
            master="0:" + "99" * 32,
        )
        # After /buy's menu, the invoice and the QR code, each user's 4th message on is news.
        assert await told(stack, users["exact"], 4) == (
            "Received 1 GRAM. 250 ★ added. Balance: 250 ★."
        )
        assert await told(stack, users["over"], 4) == (
            "Received 1.5 GRAM, more than the 1 GRAM asked: all of it is credited, 375 ★ added."
            " Balance: 375 ★."
        )
        assert await told(stack, users["twice"], 4) == (
            "Received 1 GRAM. 250 ★ added. Balance: 250 ★."
        )
        assert await told(stack, users["twice"], 5) == (
            f"Received 1 GRAM for order {comments['twice']}, which was paid already: it is"
            " credited all the same, 250 ★ added. Balance: 500 ★.\n" + QUIET_GRAM
        )
        assert await told(stack, users["late"], 4) == (
            "Received 1 GRAM. 250 ★ added. Balance: 250 ★.\nIt arrived after the invoice"
            " expired; it is credited all the same."
        )
        forms = [await told(stack, users["forms"], n) for n in (4, 5, 6)]
        under = (
            f"Received 0.25 GRAM of the 1 GRAM for order {comments['forms']}: 62.5 ★ added for"
            " what arrived. To get the whole pack, 250 ★, send the remaining {rest} GRAM with"
            " the same comment."
            " Balance: {balance} ★.\n"
        )
        assert forms == [
            under.format(rest="0.75", balance="62.5") + QUIET_GRAM,
            under.format(rest="0.5", balance="125") + QUIET_GRAM,
            "Received 0.5 GRAM. 125 ★ added. Balance: 250 ★.",
        ]
        assert await told(stack, users["usdt"], 4) == (
            "Received 1 USDT. 70 ★ added. Balance: 70 ★."
        )
        await asyncio.sleep(0.5)  # nothing else is coming
        expected = {"exact": 250, "over": 375, "twice": 500, "late": 250, "forms": 250, "usdt": 70}
        for name, user in users.items():
            balance = await stack.veil.credit.balance(user)
            assert balance.units == expected.get(name, 0) * 1_000_000, name
            news = telegram.sent_messages(user)[3:]
            assert len(news) == {"forms": 3, "twice": 2}.get(name, 1 if name in expected else 0), (
                name
            )
        telegram.send_text(ADMIN, "/stats")
        stats = await told(stack, ADMIN, 1)
        assert "Gram and USDT: 9 credited (6.5 GRAM, 1 USDT = 1695 ★), 1 below the dust" in stats
        assert "Unmatched: 2 " in stats
        assert f"{hex_hash(nocomment['hash'])[:16]} · 1 GRAM · " in stats
        assert "no_comment" in stats
        assert hex_hash(twice["hash"])[:16] not in stats  # credited to its order's user
        assert f"{hex_hash(unknown['hash'])[:16]} · 1 GRAM · comment NOTANORDER" in stats
        assert hex_hash(dust["hash"])[:16] not in stats
        assert [r.status for r in chain.requests].count(429) == 2


def assigned_booking(user_id: int) -> TonBooking:
    """A 1 GRAM payment an admin assigned to ``user_id`` (250 ★), as the watcher tells it."""
    now = int(time.time())
    payment = TonPayment(
        hash="ab" * 32,
        asset="gram",
        lt=7,
        utime=now,
        sender=None,
        amount=10**9,
        comment=None,
        order_id=None,
        status="credited",
        reason=None,
        late=False,
        user_id=user_id,
        units=250_000_000,
        created_at=now,
        assigned_by=1,
    )
    return TonBooking(payment=payment, new=True, balance=250_000_000)


async def test_the_credit_notice_through_a_reply_that_is_not_the_bot_apis_is_tried_again() -> None:
    # A proxy's page instead of the Bot API's answer is a Telegram that cannot take the
    # message now, like a 5xx: the watcher tells the user on its next pass. It went up out of
    # the notifier and the watcher's pass as an unexpected error instead.
    booking = assigned_booking(4711)
    async with HostileTelegram(token=TOKEN) as telegram:
        bot = build_bot(TOKEN, telegram.url)
        try:
            notify = TonNotifier(bot, Catalogs())
            telegram.misbehave("sendMessage", "page")
            assert await notify(booking) is False
            assert await notify(booking) is True
        finally:
            await bot.session.close()
    assert [m["text"] for m in telegram.sent_messages(4711)] == [notify.text(booking)]


async def test_a_credit_notice_telegram_took_with_a_reply_that_does_not_validate_is_told_once() -> (
    None
):
    # The Bot API's "ok" with a Message that does not validate: the notice went out. Taken for
    # a Telegram that cannot take it now, it was told again on the watcher's next pass.
    booking = assigned_booking(4711)
    async with HostileTelegram(token=TOKEN) as telegram:
        bot = build_bot(TOKEN, telegram.url)
        try:
            notify = TonNotifier(bot, Catalogs())
            telegram.misbehave("sendMessage", "malformed")
            assert await notify(booking) is True
        finally:
            await bot.session.close()
    assert [m["text"] for m in telegram.sent_messages(4711)] == [notify.text(booking)]


async def test_help_and_the_top_up_button_offer_what_buy_sells(tmp_path: Path) -> None:
    # /help said "buy credit with Telegram Stars" where Gram and USDT were sold too, and the
    # top-up button under an inline or group notice (/start buy) showed the Stars packs only.
    async with FakeToncenter() as chain, ton_bot(tmp_path, chain) as (stack, telegram):
        telegram.send_text(ALICE, "/help")
        telegram.send_text(BOB, "/help", language_code="ru")
        (help_text,) = await stack.final_messages(ALICE, 1)
        assert "/buy — buy credit with Telegram Stars, Gram or USDT on TON\n" in help_text["text"]
        (ru_help,) = await stack.final_messages(BOB, 1)
        assert (
            "/buy — купить кредит за звёзды Telegram, Gram или USDT в сети TON\n"
            in (ru_help["text"])
        )
        telegram.send_text(CAROL, "/start buy")
        (menu,) = await stack.final_messages(CAROL, 1)
        labels = [row[0]["text"] for row in menu["reply_markup"]["inline_keyboard"]]
        assert labels[-3:] == [
            "1 GRAM → 250 ★ credit",
            "5 GRAM → 1300 ★ credit",
            "1 USDT (USDT on TON) → 70 ★ credit",
        ]
    gram_only = tmp_path / "gram"
    async with (
        FakeToncenter() as chain,
        ton_bot(gram_only, chain, ton_usdt=False) as (
            stack,
            telegram,
        ),
    ):
        telegram.send_text(ALICE, "/help")
        (help_text,) = await stack.final_messages(ALICE, 1)
        assert "/buy — buy credit with Telegram Stars or Gram\n" in help_text["text"]


async def test_a_payers_comment_cannot_forge_lines_of_the_admins_stats(tmp_path: Path) -> None:
    # Anyone can pay with any comment: its line break made a second line of /stats, one that
    # reads like another entry, and a direction mark turned the rest of the line around.
    forged = "x\nab12cd34ef56ab78 · 500 GRAM · comment ok · credited\u202e"
    async with FakeToncenter() as chain, ton_bot(tmp_path, chain) as (stack, telegram):
        tx = chain.add_transaction(WALLET_RAW, value=2 * GRAM, comment=forged)
        assert stack.veil.ton_books is not None
        async with asyncio.timeout(10):
            while not await stack.veil.ton_books.unmatched():  # noqa: ASYNC110 -- the watcher
                await asyncio.sleep(0.02)
        telegram.send_text(ADMIN, "/stats")
        stats = await told(stack, ADMIN, 1)
    entry = (
        f"{hex_hash(tx['hash'])[:16]} · 2 GRAM · comment"
        " x\\u000aab12cd34ef56ab78 · 500 GRAM · comment ok · credited\\u202e"
        " · orders — · unknown_comment · user —"
    )
    assert stats.split("\n")[-1] == entry


async def test_payers_comments_cannot_make_the_admins_stats_too_long(tmp_path: Path) -> None:
    # A comment is kept to 120 characters, but a line break in it is shown as six: five
    # payments over the dust minimum with comments of line breaks made /stats longer than a
    # message, Telegram refused it, and the admins had no /stats until newer payments came.
    async with FakeToncenter() as chain, ton_bot(tmp_path, chain) as (stack, telegram):
        for _ in range(5):
            chain.add_transaction(WALLET_RAW, value=2 * GRAM, comment="AB" + "\n" * 200)
        assert stack.veil.ton_books is not None
        async with asyncio.timeout(10):
            while len(await stack.veil.ton_books.unmatched()) < 5:  # noqa: ASYNC110 -- the watcher
                await asyncio.sleep(0.02)
        telegram.send_text(ADMIN, "/stats")
        stats = await told(stack, ADMIN, 1)
    entries = stats.split("\n")[-5:]
    assert "Unmatched: 5 " in stats
    for entry in entries:
        assert " · 2 GRAM · comment AB\\u000a\\u000a" in entry
        assert entry.endswith("… · orders — · unknown_comment · user —")


async def test_the_orders_a_long_comment_names_past_what_is_kept_are_shown_in_stats(
    tmp_path: Path,
) -> None:
    # The whole comment is matched, but only its first 120 characters were kept (64 shown):
    # two order ids at its end left the payment unmatched (two_orders) where the admins
    # could not see which orders it named, so /tonassign was a guess.
    async with FakeToncenter() as chain, ton_bot(tmp_path, chain) as (stack, telegram):
        mine = comment_of(await buy(stack, telegram, ALICE, "1 GRAM"))
        theirs = comment_of(await buy(stack, telegram, BOB, "1 GRAM"))
        comment = "payment " * 20 + f"for {mine}, not {theirs}"
        tx = chain.add_transaction(WALLET_RAW, value=2 * GRAM, comment=comment)
        assert stack.veil.ton_books is not None
        async with asyncio.timeout(10):
            while not await stack.veil.ton_books.unmatched():  # noqa: ASYNC110 -- the watcher
                await asyncio.sleep(0.02)
        before = len(telegram.sent_messages(ADMIN))
        telegram.send_text(ADMIN, "/stats")
        stats = await told(stack, ADMIN, before + 1)
        (payment,) = await stack.veil.ton_books.unmatched()
    shown = ("payment " * 8)[:64]
    assert stats.split("\n")[-1] == (
        f"{hex_hash(tx['hash'])[:16]} · 2 GRAM · comment {shown}… · orders {mine}, {theirs}"
        " · two_orders · user —"
    )
    assert payment.named == (mine, theirs)


async def test_a_comment_naming_many_orders_shows_a_few_of_them_in_stats(tmp_path: Path) -> None:
    async with FakeToncenter() as chain, ton_bot(tmp_path, chain) as (stack, telegram):
        named = [comment_of(await buy(stack, telegram, ALICE, "1 GRAM")) for _ in range(4)]
        tx = chain.add_transaction(WALLET_RAW, value=2 * GRAM, comment=" ".join(named))
        assert stack.veil.ton_books is not None
        async with asyncio.timeout(10):
            while not await stack.veil.ton_books.unmatched():  # noqa: ASYNC110 -- the watcher
                await asyncio.sleep(0.02)
        before = len(telegram.sent_messages(ADMIN))
        telegram.send_text(ADMIN, "/stats")
        stats = await told(stack, ADMIN, before + 1)
    assert stats.split("\n")[-1] == (
        f"{hex_hash(tx['hash'])[:16]} · 2 GRAM · comment {' '.join(named)}"
        f" · orders {', '.join(named[:3])}, … · two_orders · user —"
    )
