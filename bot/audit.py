"""``python -m bot audit``: check every charge again, offline, and print the totals.

Reads the database only (nothing is sent anywhere) and verifies each charge's stored receipt
against the pinned operator keys (``VEIL_OPERATOR_KEYS``) and those retired by a rotation
(``VEIL_RETIRED_OPERATOR_KEYS``): see ``services.audit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models import MasterKey, Store
from models.database import on_read_only_disk, unchanged_while_read
from services.audit import Auditor, AuditReport
from services.prices import format_units
from services.ton.shop import format_amount

if TYPE_CHECKING:
    from bot.settings import BotSettings
    from models.ton import SkippedTransfer


async def audit(settings: BotSettings) -> AuditReport:
    """Audit the database the settings name.

    On a data folder whose disk is mounted read-only (ext4 remounts so on errors), when an
    audit may be wanted most, the database is opened for reading only: it was refused with
    "cannot open database …: Read-only file system", though an audit writes nothing.
    """
    path = settings.database_path
    with unchanged_while_read(path):  # a bot writing it through another mount: told
        store = await Store.open(
            path,
            MasterKey.for_reading(settings.master_key_path),
            busy_timeout=settings.db_busy_timeout,
            read_only=on_read_only_disk(path.parent),
        )
        try:
            return await Auditor(store, settings.audit_keys).run()
        finally:
            await store.close()


def report_lines(report: AuditReport) -> list[str]:
    """The report as the command prints it: problems first, then the totals."""
    outcomes = ", ".join(f"{count} {name}" for name, count in sorted(report.by_outcome.items()))
    lines = list(report.problems)
    lines.append(
        f"charges: {report.charges} ({outcomes or 'none'}); tokens:"
        f" {report.prompt_tokens} prompt + {report.completion_tokens} answer;"
        f" gross {format_units(report.gross)} ★, charged {format_units(report.charged)} ★"
        f" after free tokens"
    )
    if report.legacy:
        lines.append(
            f"before receipts were kept: {report.legacy} charge(s),"
            f" {format_units(report.legacy_charged)} ★ (not provable)"
        )
    lines.append(f"payments: {report.payments}, {report.stars_received} Stars")
    if report.grants:
        lines.append(
            f"grants: {report.grants} row(s), {format_units(report.granted)} ★"
            " (credit no payment proves: written by hand)"
        )
    if report.ton is not None and (report.ton.credited or report.ton.unmatched or report.ton.dust):
        ton = report.ton
        lines.append(
            f"TON payments: {ton.credited} credited ({format_amount('gram', ton.nanotons)},"
            f" {format_amount('usdt', ton.usdt)}, {format_units(ton.units)} ★),"
            f" {ton.unmatched} unmatched, {ton.dust} dust"
        )
    if report.ton_unproven:
        lines.append(
            f"USDT transfers set aside, never credited (the master's get-method failed for their"
            f" sender): {len(report.ton_unproven)}: {_skipped(report.ton_unproven)}"
        )
    if report.ton_jetton_gram:
        lines.append(
            f"Gram that came with a jetton message (transfer_notification or excesses), never"
            f" credited: {len(report.ton_jetton_gram)}: {_skipped(report.ton_jetton_gram)}"
        )
    if report.ok:
        lines.append("every charge proves: its receipt verifies and its amount matches its price")
    else:
        lines.append(f"{len(report.problems)} problem(s) found")
    return lines


def _skipped(transfers: list[SkippedTransfer]) -> str:
    """Skipped transfers as the audit lists them: hash, what arrived, from whom."""
    return "; ".join(
        f"{t.hash} ({'amount unknown' if t.amount is None else format_amount(t.asset, t.amount)}"
        f" from {t.sender or 'an unknown sender'})"
        for t in transfers
    )
