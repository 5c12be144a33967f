"""``python -m bot reconcile`` and ``python -m bot audit`` cover Gram and USDT payments."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import TYPE_CHECKING

from tests.botstack import TOKEN, bot_env
from tests.fakes.telegram import FakeTelegram
from tests.fakes.toncenter import FakeToncenter, hex_hash
from tests.harness import run_python
from tests.test_ton_bot import ALICE, GRAM, buy, comment_of, told, ton_bot
from tests.tonstack import WALLET, WALLET_RAW

if TYPE_CHECKING:
    import subprocess
    from pathlib import Path


def run_bot(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "bot", *args, env=env)


async def test_reconcile_books_a_missed_payment_and_audit_checks_ton_rows(
    tmp_path: Path,
) -> None:
    async with FakeToncenter() as chain:
        async with ton_bot(tmp_path, chain) as (stack, telegram):
            comment = comment_of(await buy(stack, telegram, ALICE, "1 GRAM"))
            seen = chain.add_transaction(WALLET_RAW, value=GRAM // 2, comment=comment)
            assert (await told(stack, ALICE, 4)).startswith("Received 0.5 GRAM of the 1 GRAM")
            verify_key = stack.gateway.verify_key
            gateway = stack.gateway.url
        # While the bot was down, the rest arrived; the chain has it, the books do not.
        missed = chain.add_transaction(WALLET_RAW, value=GRAM // 2, comment=comment)
        async with FakeTelegram(token=TOKEN) as telegram_api:
            env = bot_env(telegram_api.url, gateway, verify_key, tmp_path)
            env |= {
                "VEIL_TON_ADDRESS": WALLET.friendly,
                "VEIL_TONCENTER_URL": chain.url,
                "VEIL_TON_PACKS": "1000000000:250000000,5000000000:1300000000",
            }
            differ = await asyncio.to_thread(run_bot, env, "reconcile")
            assert differ.returncode == 1, differ.stderr
            assert differ.stdout.splitlines() == [
                (
                    f"ton {hex_hash(missed['hash'])}: 0.5 GRAM (lt {missed['lt']}) is on the"
                    " chain but not recorded"
                ),
                "1 difference(s) in 2 transaction(s)",
            ]
            fixed = await asyncio.to_thread(run_bot, env, "reconcile", "--fix")
            assert fixed.returncode == 0, fixed.stdout + fixed.stderr
            assert fixed.stdout.splitlines() == [
                f"booked ton {hex_hash(missed['hash'])}: credited, 125000000 µ★ to user {ALICE}",
                "ledger, Telegram and the TON chain agree on 2 transaction(s)",
            ]

            audit = await asyncio.to_thread(run_bot, env, "audit")
            assert audit.returncode == 0, audit.stdout + audit.stderr
            assert "TON payments: 2 credited (1 GRAM, 0 USDT, 250 ★), 0 unmatched, 0 dust" in (
                audit.stdout
            )
            # Someone edits a payment's credit by hand: the audit names it and fails.
            with sqlite3.connect(tmp_path / "veil.db") as db:
                db.execute(
                    "UPDATE ton_payments SET units = units + 1 WHERE hash = ?",
                    [hex_hash(seen["hash"])],
                )
            db.close()
            tampered = await asyncio.to_thread(run_bot, env, "audit")
            assert tampered.returncode == 1
            assert (
                f"ton payment {hex_hash(seen['hash'])} (user {ALICE}): credited 125000001 µ★,"
                " its amount at its rate is 125000000"
            ) in tampered.stdout
            assert f"user {ALICE}: holds, payments and ledger rows disagree" in tampered.stdout
