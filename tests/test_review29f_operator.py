"""review29f: an operator's settings that did nothing and said nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from typing import TYPE_CHECKING

import pytest
from structlog.testing import capture_logs

from bot.settings import BotSettings
from common.settings import SettingsError, load_settings
from models import MasterKey, Store
from models.journal import Journal, JournalEntry
from sealed.encoding import b64e
from services.credit import Credit
from services.journal import PaymentJournal
from services.prices import Prices
from services.shop import Pack, Shop
from tests.botstack import TOKEN, running_stack
from tests.harness import (
    CLIENT_VERIFY_KEY,
    free_port,
    install_client_key,
    new_operator_key,
    run_python,
)

if TYPE_CHECKING:
    from pathlib import Path

USER = 4242


UNSERVED = [
    {
        "event": "chat.default_model_unserved",
        "log_level": "warning",
        "model": "veil-tset",
        "served": ["veil-test"],
    },
    {
        "event": "chat.priced_model_unserved",
        "log_level": "warning",
        "models": ["veil-tset"],
        "served": ["veil-test"],
    },
]


@pytest.mark.parametrize(
    ("default", "prices", "told"),
    [
        ("veil-tset", "veil-tset=100/300,veil-test=1/2,*=20/60", UNSERVED),
        ("veil-test", "veil-test=1/2,*=20/60", []),
    ],
)
async def test_a_default_model_and_a_price_no_gateway_serves_are_told(
    tmp_path: Path, default: str, prices: str, told: list[dict[str, object]]
) -> None:
    """``VEIL_DEFAULT_MODEL`` and a ``VEIL_PRICES`` model misspelt: warned once, by name.

    Before, users got the first served model and the misspelt model's price was never used
    (the served one billed at ``*``), and nothing in the log said so. Names the gateways
    serve are not told.
    """
    with capture_logs() as logs:
        async with running_stack(
            tmp_path, models=("veil-test",), default_model=default, prices=prices
        ) as stack:
            for turn in (1, 2):
                stack.telegram.send_text(USER, f"question {turn}")
                await stack.final_messages(USER, count=turn)

    assert [entry for entry in logs if entry["event"].endswith("_unserved")] == told


def _settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **given: str) -> None:
    """The bot's required settings, and ``given``, in the environment (no ``.env`` read)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VEIL_BOT_TOKEN", "123456:TOKEN")
    monkeypatch.setenv("VEIL_OPERATOR_KEYS", b64e(bytes(32)))
    for name, value in given.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
    ("admins", "line"),
    [
        # ``isdigit`` took it; ``int`` then failed at start with a traceback
        ("12,³", "veil: setting VEIL_ADMINS is invalid: Telegram user ids, comma-separated"),
        # a group's id: taken, and that admin could never be one
        (
            "12, -1001234567890",
            (
                "veil: setting VEIL_ADMINS is invalid: -1001234567890 is a group's or channel's"
                " id; an admin is a user: their own id (a whole number above 0)"
            ),
        ),
        ("0", "veil: setting VEIL_ADMINS is invalid: Telegram user ids, comma-separated"),
    ],
)
def test_admins_that_name_no_user_are_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, admins: str, line: str
) -> None:
    """``VEIL_ADMINS`` holds users' ids: anything else stops start-up naming the setting."""
    _settings_env(monkeypatch, tmp_path, VEIL_ADMINS=admins)
    with pytest.raises(SettingsError) as refused:
        load_settings(BotSettings).admin_ids  # noqa: B018 -- what start-up reads
    assert refused.value.code == line


def test_admins_as_users_ids_are_taken(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Users' ids, spaced as an operator types them, are the admins."""
    _settings_env(monkeypatch, tmp_path, VEIL_ADMINS=" 12, 345 ,")
    assert load_settings(BotSettings).admin_ids == frozenset({12, 345})


async def test_a_backup_taken_while_payments_come_holds_each_finished_one_in_its_ledger(
    tmp_path: Path,
) -> None:
    """The journal's copy is taken before the database's: a finished entry is in the ledger.

    A restore replays only the journal's unfinished entries. The database was copied first, so
    a payment booked and told between the two copies was finished in the journal's copy and
    missing from the database's: restored, it was credited nowhere, and nothing said so.
    """
    data = tmp_path / "data"
    data.mkdir()
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    journal = await Journal.open(data / "journal.db")
    shop = Shop(store, Pack.parse_list("50:50000000"))
    books = PaymentJournal(journal, shop, Credit(store, Prices.parse("*=20/60"), 0))
    paying = True

    async def pay() -> int:
        paid = 0
        while paying or paid < 20:
            entry = JournalEntry(
                kind="payment",
                user_id=USER,
                payload="order-1",
                currency="XTR",
                total_amount=50,
                charge_id=f"charge-{paid}",
                received_at=1_750_000_000,
            )
            await journal.record([entry])
            await books.book(entry)
            await journal.mark_notified(entry.key, 1_750_000_001)
            paid += 1
        return paid

    try:
        payer = asyncio.create_task(pay())
        target = tmp_path / "backup.db"
        made = await asyncio.to_thread(
            run_python, "-m", "bot", "backup", str(target), env=_backup_env(data)
        )
        paying = False
        paid = await payer
    finally:
        await journal.close()
        await store.close()
    assert made.returncode == 0, made.stderr
    with contextlib.closing(sqlite3.connect(target.with_name("backup.db.journal"))) as copy:
        finished = {
            str(row[0])
            for row in copy.execute(
                "SELECT charge_id FROM payment_journal WHERE notified_at IS NOT NULL"
            )
        }
    with contextlib.closing(sqlite3.connect(target)) as copy:
        booked = {str(row[0]) for row in copy.execute("SELECT charge_id FROM payments")}
    assert finished, f"no payment was finished before the journal's copy (of {paid})"
    assert sorted(finished - booked) == []


def _backup_env(data: Path) -> dict[str, str]:
    """What ``python -m bot backup`` reads: the bot's required settings and its data folder."""
    return {
        "VEIL_BOT_TOKEN": TOKEN,
        "VEIL_OPERATOR_KEYS": b64e(bytes(32)),
        "VEIL_DATA_DIR": str(data),
    }


async def test_a_database_that_cannot_be_copied_leaves_no_copy_of_its_journal(
    tmp_path: Path,
) -> None:
    """Copied first, the journal's copy goes again when the database's fails: both or neither."""
    data = tmp_path / "data"
    data.mkdir()
    journal = await Journal.open(data / "journal.db")
    await journal.close()
    (data / "veil.db").write_bytes(b"not a database " * 100)
    target = tmp_path / "backup.db"

    made = await asyncio.to_thread(
        run_python, "-m", "bot", "backup", str(target), env=_backup_env(data)
    )

    assert made.returncode == 1, made.stderr
    assert made.stderr.startswith(f"veil: backup of {data / 'veil.db'} failed"), made.stderr
    assert sorted(os.listdir(tmp_path)) == ["data"]  # noqa: PTH208 -- names, at once


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("VEIL_STAR_PACKS", "50:50000000,250:10000000000000000000000", "the 250 Stars pack"),
        ("VEIL_TON_PACKS", "1000000000:1000000000000001", "the 1000000000 pack"),
        ("VEIL_TON_USDT_PACKS", "100000000000000000000000:1", "the 100000000000000000000000 pack"),
        ("VEIL_PRICES", "big=1/100000000000000000000,*=20/60", "the price of 'big'"),
    ],
)
def test_packs_and_prices_past_the_most_credit_are_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, reason: str
) -> None:
    """Credit and coin are at most 10**15 here too, as the README says of every such setting.

    They were taken at any size: a pack of 10**22 µ★ was offered, and each payment for it then
    failed to be booked (the ledger's integers end below 2**63).
    """
    _settings_env(monkeypatch, tmp_path, VEIL_TON_USDT="1", **{name: value})
    with pytest.raises(SettingsError) as refused:
        load_settings(BotSettings)
    assert refused.value.code == (
        f"veil: setting {name} is invalid: {reason}: an amount of credit or coin is at most"
        " 1_000_000_000_000_000"
    )


def test_packs_and_prices_at_the_most_credit_are_taken(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """10**15 itself is an amount a pack or a price may be."""
    most = str(10**15)
    _settings_env(
        monkeypatch,
        tmp_path,
        VEIL_STAR_PACKS=f"50:{most}",
        VEIL_TON_PACKS=f"{most}:{most}",
        VEIL_PRICES=f"*={most}/{most}",
    )
    settings = load_settings(BotSettings)
    assert (settings.packs[0].units, settings.ton_pack_list[0].amount) == (10**15, 10**15)


async def test_a_bot_given_its_own_client_key_as_the_operator_key_is_refused(
    tmp_path: Path,
) -> None:
    """The two keygens' keys swapped in ``VEIL_OPERATOR_KEYS``: one line, before serving.

    The bot served, and refused every gateway's bundle as signed by a key not pinned: each
    question failed.
    """
    data = tmp_path / "data"
    key_file = install_client_key(data)
    made = await asyncio.to_thread(
        run_python,
        "-m",
        "bot",
        env={
            **_backup_env(data),
            "VEIL_OPERATOR_KEYS": b64e(CLIENT_VERIFY_KEY),
            "VEIL_TELEGRAM_API": "http://127.0.0.1:9",
        },
    )
    assert (made.returncode, made.stderr.strip().splitlines()[-1]) == (
        2,
        (
            "veil: setting VEIL_OPERATOR_KEYS is invalid: it holds the bot's own client verify"
            f" key ({key_file}); give the key python -m gateway keygen printed"
        ),
    )


async def test_a_gateway_given_its_own_operator_key_as_a_client_key_is_refused(
    tmp_path: Path,
) -> None:
    """The swap on the gateway's side, ``VEIL_CLIENT_KEYS``: one line, before it listens.

    It served, taking requests signed by its own operator key and refusing the bot's with 401.
    """
    key_file, verify_key = await new_operator_key(tmp_path)
    made = await asyncio.to_thread(
        run_python,
        "-m",
        "gateway",
        env={
            "VEIL_OPERATOR_KEY_FILE": str(key_file),
            "VEIL_CLIENT_KEYS": f"bot:{b64e(verify_key)}",
            "VEIL_VLLM_URL": "http://127.0.0.1:9",
            "VEIL_GATEWAY_PORT": "0",
            "VEIL_METRICS_PORT": "0",
        },
        timeout=30,
    )
    assert (made.returncode, made.stderr.strip().splitlines()[-1]) == (
        2,
        (
            "veil: setting VEIL_CLIENT_KEYS is invalid: client bot is this gateway's own"
            " operator verify key; pin the key python -m bot keygen printed"
        ),
    )


async def test_a_backup_through_the_entry_point_waits_for_no_playground(tmp_path: Path) -> None:
    """A bot without a token backs up with the playground down, at once.

    The backup operations.md runs in compose (``exec bot python -m common.container bot
    backup FILE``) waited 2 minutes for a playground it does not need, then failed.
    """
    data = tmp_path / "data"
    data.mkdir()
    store = await Store.open(data / "veil.db", MasterKey.load_or_create(data / "master.key"))
    await store.close()
    target = tmp_path / "backup.db"
    env = {
        "VEIL_ENV_DIRS": str(tmp_path / "no-secrets"),
        "VEIL_PLAYGROUND_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens
        "VEIL_OPERATOR_KEYS": b64e(bytes(32)),
        "VEIL_DATA_DIR": str(data),
    }
    made = await asyncio.to_thread(
        run_python, "-m", "common.container", "bot", "backup", str(target), env=env, timeout=60
    )
    assert made.returncode == 0, made.stderr
    assert target.is_file()
