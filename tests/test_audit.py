"""``python -m bot audit``: every charge proves on a normal run; an edited copy does not."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from bot.audit import report_lines
from models import MasterKey, Store
from sealed.bundle import KeyBundle, sign_bundle
from sealed.encoding import b64e
from sealed.receipt import ReceiptStatus, UsageReceipt, sign_receipt
from sealed.suites import KeyPair, Suite
from services.audit import Auditor, proof_for
from services.shop import IncomingPayment, Pack, Shop
from tests.beside import WRITTEN_BESIDE, write_beside
from tests.books import grant
from tests.botstack import bot_env, running_stack
from tests.harness import REPO, run_python

if TYPE_CHECKING:
    from pathlib import Path

USER = 9501
STAR = 1_000_000
ANSWER = " ".join(f"word{i}" for i in range(40))
PRICE_OUT = 60


def run_audit(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "bot", "audit", env=env)


def edited_copy(data: Path, copy: Path, *statements: str) -> None:
    """Copy the data folder and edit its database by hand (the triggers dropped first)."""
    shutil.copytree(data, copy)
    with sqlite3.connect(copy / "veil.db") as db:
        for table in ("ledger", "usage_receipts"):
            db.execute(f"DROP TRIGGER {table}_no_update")
        for statement in statements:
            db.execute(statement)


@pytest.fixture
async def audited(tmp_path: Path) -> tuple[dict[str, str], str]:
    """A data folder after three charged answers (one stopped); its env and a request id."""
    data = tmp_path / "data"
    async with running_stack(data, answer=ANSWER, free_tokens_per_day=0) as stack:
        assert await grant(stack.veil.store, USER, STAR, "grant", "test:welcome")
        for number in range(2):
            stack.telegram.send_text(USER, f"question {number}")
            await stack.final_messages(USER, number + 1)
            await stack.stored_turns(USER, 2 * number + 2)
        stack.vllm.stall_after = 5
        earlier = {c.params["draft_id"] for c in stack.telegram.calls_of("sendMessageDraft")}
        stack.telegram.send_text(USER, "a stopped one")
        draft = await stack.telegram.wait_for(
            "sendMessageDraft",
            lambda c: (
                c.params["draft_id"] not in earlier and "word4" in str(c.params.get("text", ""))
            ),
        )
        stack.telegram.stop_generation(USER, int(draft.params["draft_id"]))
        await stack.stored_turns(USER, 6)
        report = await Auditor(stack.veil.store, [stack.gateway.verify_key]).run()
        assert report.problems == []
        assert (report.charges, report.by_outcome) == (3, {"settled": 3})
        unpinned = await Auditor(stack.veil.store, []).run()
        assert len(unpinned.problems) == 3
        assert all("not pinned" in line for line in unpinned.problems)
        (request_id,) = await stack.veil.store.read(
            lambda db: db.execute("SELECT request_id FROM usage_receipts LIMIT 1").fetchone()
        )
        env = bot_env(stack.telegram.url, stack.gateway.url, stack.gateway.verify_key, data)
    return env, str(request_id)


def test_a_proof_keeps_the_bundle_its_receipt_was_verified_under() -> None:
    operator, signer = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()

    def bundle_for(receipt_key: ed25519.Ed25519PrivateKey) -> KeyBundle:
        keypair = KeyPair.generate(Suite.X25519)
        public = receipt_key.public_key().public_bytes_raw()
        return KeyBundle(
            Suite.X25519, keypair.public_bytes, keypair.key_id, 0, 2**40, ("m",), public
        )

    ours = sign_bundle(bundle_for(signer), operator)
    request_id = b"\x07" * 16
    receipt = sign_receipt(UsageReceipt(request_id, "m", 5, 1, ReceiptStatus.COMPLETE), signer)
    known = proof_for(receipt, ours)  # verified by the inference client under ``ours``
    assert known.receipt_key == signer.public_key().public_bytes_raw()
    assert known.bundle is not None
    assert known.bundle.body == ours.body
    assert (known.body, known.signature) == (receipt.body, receipt.signature)
    unverified = proof_for(receipt, None)
    assert (unverified.receipt_key, unverified.bundle) == (None, None)


async def test_audit_passes_on_a_normal_run(audited: tuple[dict[str, str], str]) -> None:
    env, _ = audited

    result = await asyncio.to_thread(run_audit, env)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("charges: 3 (3 settled); tokens: ")
    assert lines[-1] == (
        "every charge proves: its receipt verifies and its amount matches its price"
    )
    assert "payments: 0, 0 Stars" in lines


# A disk gone read-only (ext4 remounts so on errors): the audit, which writes nothing, was
# refused with "cannot open database …/veil.db: [Errno 30] Read-only file system", as the
# database was opened to be created, migrated and checkpointed.
_READ_ONLY_AUDIT = """
mount -o bind,ro "$DATA" "$DATA" || exit 97
exec "$PYTHON" -m bot audit
"""


def audit_read_only(env: dict[str, str]) -> subprocess.CompletedProcess[str] | None:
    """``bot audit`` with its data folder mounted read-only (a mount namespace of its own)."""
    try:
        return subprocess.run(  # noqa: S603 -- unshare, this interpreter, this project
            ["unshare", "--mount", "sh", "-c", _READ_ONLY_AUDIT],  # noqa: S607 -- util-linux
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**env, "DATA": env["VEIL_DATA_DIR"], "PYTHON": sys.executable},
            timeout=60,
            check=False,
        )
    except FileNotFoundError:
        return None


async def test_audit_runs_on_a_data_folder_on_a_read_only_disk(
    audited: tuple[dict[str, str], str],
) -> None:
    env, _ = audited

    result = await asyncio.to_thread(audit_read_only, env)

    if result is None:
        pytest.skip("needs unshare (util-linux)")
    if result.returncode == 97 or "unshare:" in result.stderr:
        pytest.skip("needs a mount namespace of its own (root, or CAP_SYS_ADMIN)")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("charges: 3 (3 settled); tokens: ")
    assert lines[-1] == (
        "every charge proves: its receipt verifies and its amount matches its price"
    )


# The disk read-only here, but not for a bot writing the same folder through another mount:
# the database was read as immutable, as it stood, and a write meanwhile could make what the
# audit read inconsistent, said nothing. The write comes through a writable mount of the same
# folder as the audit opens the database.
async def test_audit_on_a_read_only_disk_tells_a_write_through_another_mount(
    audited: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, _ = audited
    rw = tmp_path / "rw"
    rw.mkdir()

    def run() -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(  # noqa: S603 -- unshare, this interpreter, this project
                ["unshare", "--mount", "sh", "-c", WRITTEN_BESIDE],  # noqa: S607
                capture_output=True,
                text=True,
                cwd=REPO,
                env={
                    **env,
                    "DATA": env["VEIL_DATA_DIR"],
                    "RW": str(rw),
                    "PYTHON": sys.executable,
                    "WRAPPER": write_beside("audit"),
                },
                timeout=60,
                check=False,
            )
        except FileNotFoundError:
            return None

    result = await asyncio.to_thread(run)
    if result is None:
        pytest.skip("needs unshare (util-linux)")
    if result.returncode == 97 or "unshare:" in result.stderr:
        pytest.skip("needs a mount namespace of its own (root, or CAP_SYS_ADMIN)")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "every charge proves" not in result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert "changed while it was read" in line
    assert "another mount" in line


async def test_audit_still_proves_the_charges_made_before_an_operator_key_rotation(
    audited: tuple[dict[str, str], str],
) -> None:
    # docs/operations.md, step 4: the old key leaves VEIL_OPERATOR_KEYS for the retired ones.
    env, _ = audited
    new_key = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    rotated = {
        **env,
        "VEIL_OPERATOR_KEYS": b64e(new_key),
        "VEIL_RETIRED_OPERATOR_KEYS": env["VEIL_OPERATOR_KEYS"],
    }

    result = await asyncio.to_thread(run_audit, rotated)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == (
        "every charge proves: its receipt verifies and its amount matches its price"
    )
    unretired = await asyncio.to_thread(run_audit, {**env, "VEIL_OPERATOR_KEYS": b64e(new_key)})
    assert unretired.returncode == 1
    assert unretired.stdout.count("signed by an operator key that is not pinned") == 3


async def test_audit_fails_on_a_charge_edited_by_hand_even_when_the_sums_agree(
    audited: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, request_id = audited
    copy = tmp_path / "edited"
    # One answer token less, edited everywhere so every sum and the invariant still agree.
    edited_copy(
        tmp_path / "data",
        copy,
        "UPDATE usage_receipts SET completion_tokens = completion_tokens - 1,"  # noqa: S608 -- test data
        f" cost = cost - {PRICE_OUT}, charged = charged - {PRICE_OUT}"
        f" WHERE request_id = '{request_id}'",
        "UPDATE holds SET completion_used = completion_used - 1,"  # noqa: S608 -- test data
        f" cost = cost - {PRICE_OUT}, charged = charged - {PRICE_OUT}"
        f" WHERE request_id = '{request_id}'",
        f"UPDATE ledger SET amount = amount + {PRICE_OUT} WHERE source = 'usage:{request_id}'",  # noqa: S608 -- test data
    )

    result = await asyncio.to_thread(run_audit, env | {"VEIL_DATA_DIR": str(copy)})

    assert result.returncode == 1
    (problem,) = [line for line in result.stdout.splitlines() if line.startswith("charge ")]
    assert problem.startswith(f"charge {request_id} (user {USER}): the receipt counts ")
    assert result.stdout.splitlines()[-1] == "1 problem(s) found"
    # The original is untouched and still proves.
    assert (await asyncio.to_thread(run_audit, env)).returncode == 0


async def test_audit_fails_on_an_amount_edited_by_hand(
    audited: tuple[dict[str, str], str], tmp_path: Path
) -> None:
    env, request_id = audited
    copy = tmp_path / "edited"
    edited_copy(
        tmp_path / "data",
        copy,
        f"UPDATE ledger SET amount = -1 WHERE source = 'usage:{request_id}'",  # noqa: S608 -- test data
    )

    result = await asyncio.to_thread(run_audit, env | {"VEIL_DATA_DIR": str(copy)})

    assert result.returncode == 1
    assert f"charge {request_id} (user {USER}): the usage row is -1, not -" in result.stdout
    assert f"user {USER}: holds, payments and ledger rows disagree" in result.stdout


async def test_audit_fails_on_credit_added_by_hand_without_a_payment(tmp_path: Path) -> None:
    # The triggers refuse UPDATE and DELETE, not INSERT: a Stars credit (or a refund) written
    # straight into the ledger, with no payment behind it, must not prove.
    forged = 4242
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        shop = Shop(store, [Pack("50", 50, 50 * STAR)])
        await shop.record_payment(IncomingPayment(USER, "order", "XTR", 50, "stxREAL"))
        await shop.record_refund(USER, "stxREAL")
        assert (await Auditor(store, []).run()).problems == []
        for kind, amount, source in (
            ("purchase", 10**12, "stxFORGED"),
            ("subscription", STAR, "stxFORGED2"),
            ("refund", -STAR, "refund:stxNEVER"),
        ):
            await grant(store, forged + len(source), amount, kind, source)  # type: ignore[arg-type]
        # A second credit under the real payment's user, with a source of its own.
        await grant(store, USER, STAR, "purchase", "refund:stxREAL2")
        problems = (await Auditor(store, []).run()).problems
    finally:
        await store.close()
    users = sorted([forged + len("stxFORGED"), forged + len("stxFORGED2"), forged + 15, USER])
    assert problems == [f"user {user}: holds, payments and ledger rows disagree" for user in users]


async def test_audit_totals_the_credit_no_payment_proves(tmp_path: Path) -> None:
    # No code path writes a grant: one in the ledger was written by hand, and the audit says so.
    store = await Store.open(tmp_path / "veil.db", MasterKey.generate())
    try:
        assert "grants" not in " ".join(report_lines(await Auditor(store, []).run()))
        await grant(store, USER, 3 * STAR, "grant", "by-hand:1")
        await grant(store, USER, -STAR, "grant", "by-hand:2")
        report = await Auditor(store, []).run()
    finally:
        await store.close()
    assert (report.grants, report.granted, report.problems) == (2, 2 * STAR, [])
    assert "grants: 2 row(s), 2 ★ (credit no payment proves: written by hand)" in report_lines(
        report
    )
