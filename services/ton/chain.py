"""What Veil reads from the TON chain: addresses, transaction hashes, comments, transfers.

Addresses are parsed with ``pytoniq-core`` (raw ``0:<hex>`` and user-friendly ``EQ…``/``UQ…``
forms, their checksum and flags) and compared in raw form; comments are read from the message
body's BoC with the same library (a text comment is a cell starting with 32 zero bits, then a
snake string). Nothing here parses addresses or BoCs by hand.

``gram_transfer`` and ``jetton_transfer`` turn one toncenter v3 record (a transaction, or a
jetton transfer) into a ``Transfer``: the facts the books need, or a ``skip`` reason for records
that bring no money (aborted, bounced, outgoing, to another account, a jetton that is not the
real USDT) or no Gram payment (a jetton wallet's ``transfer_notification``: the Gram a jetton
transfer's sender forwarded with it, the jetton transfer being the payment; its ``excesses``:
the Gram left over from a jetton transfer that named us its response address). Anyone can
send such a body with any amount, so the watcher keeps those with Gram worth a look
(``JETTON_SKIPS``) where the audit lists them. A record whose shape
is wrong raises ``MalformedTransfer``: the watcher stops there rather than step over a payment
it could not read. A jetton transfer's ``jetton_master`` is only what the indexer believes; the
watcher also checks that its sending wallet is the one the real master computes for the sender
(``address_boc`` / ``address_from_boc`` carry the addresses of that get-method call).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytoniq_core.boc.address import Address, AddressError
from pytoniq_core.boc.builder import Builder
from pytoniq_core.boc.cell import Cell

from services.ton.errors import MalformedTransfer

if TYPE_CHECKING:
    from pytoniq_core.boc.slice import Slice

    from models.ton import Asset

__all__ = [
    "JETTON_SKIPS",
    "MAX_BODY_CHARS",
    "USDT_MAINNET_MASTER",
    "Transfer",
    "WalletAddress",
    "address_boc",
    "address_from_boc",
    "comment_from_boc",
    "gram_transfer",
    "jetton_transfer",
    "normalise_hash",
    "trace_id",
]

# The USDT jetton's master contract on mainnet (6 decimals); fake jettons are common.
USDT_MAINNET_MASTER = "EQCxE6mUtQJKFnGfaROTKOt1lZbDiiX1kCixRv7Nw2Id_sDs"
_HASH_BYTES = 32
_TEXT_COMMENT_OP = 0
# TEP-74: a jetton wallet tells its owner of jettons received (with the forward amount's Gram),
# and returns what is left of a transfer's Gram to its ``response_destination`` (``excesses``).
_TRANSFER_NOTIFICATION_OP = 0x7362D09C
_EXCESSES_OP = 0xD53276DB
JETTON_SKIPS = frozenset({"jetton_notification", "jetton_excesses"})
_WORKCHAINS = (0, -1)  # the basechain and the masterchain
_MAX_DIGITS = 40  # an amount is under 2**120 (37 digits; VarUInteger 16), an lt under 2**64
# A message body (or a jetton transfer's forward payload) longer than this, as base64, is not
# read: a text comment that can name an order, or a jetton wallet's notice carrying one, is a
# few hundred bytes, and this holds a comment of about 2,000 (2 KiB of BoC, 16 cells). A
# message may be up to 256 KiB (2**21 bits, config param 43): pytoniq-core reads one of 175 KiB
# in tens of milliseconds, on the event loop, and a page held ~30 of them (review30a).
MAX_BODY_CHARS = 4 * (2048 // 3 + 1)


@dataclass(frozen=True, slots=True)
class WalletAddress:
    """A TON address, parsed and checked once: its raw form and the forms shown to people.

    ``friendly`` is the non-bounceable url-safe form (``UQ…``, ``0Q…`` on testnet) that wallets
    expect for a wallet; ``bounceable`` the ``EQ…``/``kQ…`` form.
    """

    raw: str
    friendly: str
    bounceable: str
    testnet: bool

    @classmethod
    def parse(cls, text: str, *, testnet: bool = False) -> WalletAddress:
        """Parse any form; ``ValueError`` for a bad address or a network flag that disagrees."""
        address = parse_address(text)
        if address is None:
            raise ValueError(f"{text.strip()!r} is not a TON address (raw 0:<hex> or EQ…/UQ…)")
        if ":" not in text and address.is_test_only != testnet:
            network = "testnet" if address.is_test_only else "mainnet"
            raise ValueError(
                f"{text.strip()!r} is a {network} address but VEIL_TON_TESTNET is"
                f" {'on' if testnet else 'off'}"
            )
        return cls(
            raw=address.to_str(is_user_friendly=False),
            friendly=address.to_str(is_bounceable=False, is_test_only=testnet),
            bounceable=address.to_str(is_bounceable=True, is_test_only=testnet),
            testnet=testnet,
        )


def parse_address(text: object) -> Address | None:
    """The address ``text`` names in any form, or None if it names none."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        address = Address(text.strip())
    except (AddressError, ValueError, IndexError, TypeError, binascii.Error):
        return None
    # The library takes a raw address with a short hash or any workchain number as given.
    if len(address.hash_part) != _HASH_BYTES or address.wc not in _WORKCHAINS:
        return None
    return address


def raw_address(text: object) -> str | None:
    """``text`` in raw form (``0:<hex>``, lowercase), or None if it is no address."""
    address = parse_address(text)
    return None if address is None else str(address.to_str(is_user_friendly=False))


def normalise_hash(value: object) -> str:
    """A transaction hash as toncenter gives it (base64, url-safe base64 or hex) in hex.

    Raises ``MalformedTransfer`` for anything that is not 32 bytes.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 2 * _HASH_BYTES:
                raw = bytes.fromhex(text)
            else:
                raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
        except (ValueError, binascii.Error):
            raw = b""
        if len(raw) == _HASH_BYTES:
            return raw.hex()
    raise MalformedTransfer("a transaction hash is not 32 bytes")


def comment_from_boc(body: object) -> str | None:
    """The text comment in a message body or forward payload (a base64 BoC), or None.

    None for no body, a body that is not a text comment (another op, an encrypted comment),
    or bytes the library cannot read: such a payment has no comment.
    """
    return _comment_of(_opened(body))


def _too_large(body: object) -> int:
    """The length of a body (base64) too large to be read (``MAX_BODY_CHARS``), else 0."""
    return len(body) if isinstance(body, str) and len(body) > MAX_BODY_CHARS else 0


def _opened(body: object) -> tuple[int, Slice] | None:
    """A message body (a base64 BoC) as its op (first 32 bits) and the rest; None without one.

    None too for one too large to be a comment (``too_large``): it is never parsed.
    """
    if not isinstance(body, str) or not body or _too_large(body):
        return None
    try:
        cell_slice = Cell.one_from_boc(base64.b64decode(body)).begin_parse()
        if cell_slice.remaining_bits < 32:  # noqa: PLR2004 -- the op's width
            return None
        op = cell_slice.load_uint(32)
    except Exception:  # noqa: BLE001 -- untrusted bytes from the chain: any failure means "none"
        return None
    return (op, cell_slice) if isinstance(op, int) else None


def _comment_of(opened: tuple[int, Slice] | None) -> str | None:
    """The text comment of an opened body (op 0, then a snake string), or None."""
    if opened is None or opened[0] != _TEXT_COMMENT_OP:
        return None
    try:
        text = opened[1].load_snake_string()
    except Exception:  # noqa: BLE001 -- untrusted bytes from the chain: any failure means "no comment"
        return None
    return text if isinstance(text, str) else None


def address_boc(address: str) -> str:
    """An address as a get-method's slice argument: a cell holding it, as a base64 BoC."""
    cell = Builder().store_address(Address(address)).end_cell()
    return base64.b64encode(cell.to_boc()).decode()


def address_from_boc(boc: object) -> str | None:
    """The address (raw form) a get-method answered as a slice or cell (base64 BoC), or None.

    None for anything else: not a string, not a BoC, no address in it, or more than an address.
    """
    if not isinstance(boc, str) or not boc:
        return None
    try:
        cell_slice = Cell.one_from_boc(base64.b64decode(boc, validate=True)).begin_parse()
        address = cell_slice.load_address()
    except Exception:  # noqa: BLE001 -- untrusted bytes from the indexer: any failure is "none"
        return None
    if not isinstance(address, Address) or cell_slice.remaining_bits or cell_slice.remaining_refs:
        return None
    return raw_address(address.to_str(is_user_friendly=False))


@dataclass(frozen=True, slots=True)
class Transfer:
    """One incoming transfer as the books need it; ``skip`` says why it brings no money.

    ``wallet`` is, for a jetton transfer, the jetton wallet that sent it (raw form, None if the
    record names none): the real master's wallet of ``sender`` for a real USDT transfer.
    ``trace`` is the indexer's id (hex) of the trace the transaction belongs to: the chain of
    messages from one external message, which a message body cannot name or forge.
    ``unread`` is the length (base64) of a body or forward payload too large to hold a
    comment, left unread (``MAX_BODY_CHARS``); 0 when it was read, or there was none.
    """

    asset: Asset
    hash: str
    lt: int
    utime: int
    sender: str | None
    amount: int
    comment: str | None
    skip: str | None = None
    wallet: str | None = None
    trace: str | None = None
    unread: int = 0


def gram_transfer(record: Any, account: str) -> Transfer:  # noqa: ANN401 -- parsed JSON
    """A toncenter v3 transaction of ``account`` (raw form) as a Gram transfer."""
    if not isinstance(record, dict):
        raise MalformedTransfer("a transaction is not an object")
    tx_hash = normalise_hash(record.get("hash"))
    lt, utime = _integer(record, "lt", tx_hash), _integer(record, "now", tx_hash)
    description = record.get("description")
    aborted = isinstance(description, dict) and description.get("aborted") is True
    message = record.get("in_msg")
    if not isinstance(message, dict) or message.get("source") in {None, ""}:
        return Transfer("gram", tx_hash, lt, utime, None, 0, None, skip="not_incoming")
    sender = raw_address(message.get("source"))
    amount = _integer(message, "value", tx_hash)
    trace = trace_id(record.get("trace_id"))
    skip = None
    if aborted and message.get("bounce") is not False:
        # The value went back in the bounce phase. A non-bounceable message keeps it even
        # when the transaction aborts: every payment to a wallet not deployed yet (no code to
        # run) is such a transaction, and the invoice shows the non-bounceable address.
        skip = "aborted"
    elif message.get("bounced") is True:
        skip = "bounced"
    elif raw_address(message.get("destination")) != account:
        skip = "not_ours"
    if skip is not None:  # no money of ours: its body is not read
        return Transfer("gram", tx_hash, lt, utime, sender, amount, None, skip, trace=trace)
    op, comment, unread = _content(message.get("message_content"))
    if unread:
        # Not parsed: its op as the indexer read it, so that a jetton message this large (a
        # payer's forward payload that long) is still no Gram payment.
        op = _indexer_op(message.get("opcode"))
    if op == _TRANSFER_NOTIFICATION_OP:
        # A jetton transfer's notice from our jetton wallet: the payment is the jettons (the
        # USDT stream books them, and logs a fake); the Gram it carries is the forward amount
        # the sender attached for the notice, not a Gram payment.
        skip = "jetton_notification"
    elif op == _EXCESSES_OP:
        # The Gram left over from a jetton transfer that named us its response address (a
        # payer's wallet may, or our own transfer out: ``ChainReader.own_change`` tells which):
        # change, not a payment for an order.
        skip = "jetton_excesses"
    return Transfer(
        "gram", tx_hash, lt, utime, sender, amount, comment, skip, trace=trace, unread=unread
    )


def _indexer_op(opcode: object) -> int | None:
    """A message's op as toncenter lists it (``"0x7362d09c"``), or None."""
    if isinstance(opcode, str) and opcode.lower().startswith("0x"):
        with contextlib.suppress(ValueError):
            return int(opcode, 16)
    return None


def _content(content: object) -> tuple[int | None, str | None, int]:
    """A message's op, its comment, and the length of a body too large to read (else 0).

    The body is opened once, for both; toncenter's ``decoded`` comment is taken only where
    the body holds none (and is no longer than a body read would be).
    """
    if not isinstance(content, dict):
        return None, None, 0
    body = content.get("body")
    if unread := _too_large(body):
        return None, None, unread
    opened = _opened(body)
    op = None if opened is None else opened[0]
    comment = _comment_of(opened)
    decoded = content.get("decoded")
    if comment is None and isinstance(decoded, dict) and decoded.get("type") == "text_comment":
        text = decoded.get("comment")
        if unread := _too_large(text):
            return op, None, unread
        comment = text if isinstance(text, str) else None
    return op, comment, 0


def trace_id(value: object) -> str | None:
    """A record's ``trace_id`` (a hash, in any form toncenter gives) in hex; None if none."""
    try:
        return None if value is None else normalise_hash(value)
    except MalformedTransfer:
        return None


def jetton_transfer(record: Any, owner: str, master: str) -> Transfer:  # noqa: ANN401 -- parsed JSON
    """A toncenter v3 jetton transfer to ``owner`` (raw) as a USDT transfer of ``master`` (raw).

    A transfer of any other jetton is skipped as ``foreign_jetton``: a fake USDT costs nothing
    to make, and only the real master's wallets carry the real one. The indexer's
    ``jetton_master`` is what the sending wallet claims, so a transfer that passes here is
    credited only once its ``wallet`` is proven the master's (``ChainReader``).
    """
    if not isinstance(record, dict):
        raise MalformedTransfer("a jetton transfer is not an object")
    tx_hash = normalise_hash(record.get("transaction_hash"))
    lt = _integer(record, "transaction_lt", tx_hash)
    utime = _integer(record, "transaction_now", tx_hash)
    amount = _integer(record, "amount", tx_hash)
    sender = raw_address(record.get("source"))
    skip = None
    if record.get("transaction_aborted") is True:
        skip = "aborted"
    elif raw_address(record.get("destination")) != owner:
        skip = "not_ours"
    elif raw_address(record.get("jetton_master")) != master:
        skip = "foreign_jetton"
    wallet = raw_address(record.get("source_wallet"))
    # Only the real USDT's payload is read (a fake jetton's, any size, never).
    payload = None if skip is not None else record.get("forward_payload")
    comment = comment_from_boc(payload)
    return Transfer(
        "usdt",
        tx_hash,
        lt,
        utime,
        sender,
        amount,
        comment,
        skip,
        wallet,
        unread=_too_large(payload),
    )


def _integer(record: dict[str, Any], key: str, tx_hash: str) -> int:
    """A non-negative integer toncenter sends as a string (``lt``, ``value``) or a number.

    Only ASCII digits: ``int`` would also take a sign, spaces, ``_`` and other scripts' digits,
    none of them toncenter's shape. The error names the field and the transaction, for the
    operator's line (the watcher stops there: ``ton.watcher_backoff``).
    """
    value = record.get(key)
    where = f"{key} of transaction {tx_hash}"
    if isinstance(value, bool):
        raise MalformedTransfer(f"the {where} is a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        if len(value) > _MAX_DIGITS:
            raise MalformedTransfer(f"the {where} is longer than any TON number")
        number = int(value)
    else:
        raise MalformedTransfer(f"the {where} is missing or not a whole number")
    if number < 0:
        raise MalformedTransfer(f"the {where} is negative")
    return number
