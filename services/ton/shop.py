"""Gram and USDT packs, orders, and the invoice a user pays from any TON wallet.

An order is a pending invoice: the receiving address (``VEIL_TON_ADDRESS``), the exact amount,
a unique short comment (the order's id) and an expiry. The invoice carries the
``ton://transfer/…`` link, the same link under ``https://app.tonkeeper.com/transfer/…`` (a URL
Telegram accepts on a button) and a QR code of the ``ton://`` link. A USDT invoice is a jetton
transfer: the same links with ``jetton=<USDT master>``; the amount is in µUSDT (6 decimals).
"""

from __future__ import annotations

import functools
import io
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final
from urllib.parse import urlencode

import segno
import structlog

from models import ton as storage
from models.ton import Asset, TonOrder
from services.errors import LedgerUnavailable, TooManyOrders, UnknownPack, ledger_failures
from services.shop import MAX_OPEN_ORDERS

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from models import Database, Store
    from services.ton.chain import WalletAddress

__all__ = ["DECIMALS", "SYMBOLS", "Invoice", "TonPack", "TonShop", "format_amount"]

log = structlog.get_logger("veil.ton")

DECIMALS: Final[Mapping[Asset, int]] = {"gram": 9, "usdt": 6}
SYMBOLS: Final[Mapping[Asset, str]] = {"gram": "GRAM", "usdt": "USDT"}
ORDER_TTL_S: Final = 3600
# Letters and digits nobody confuses when copying by hand (no 0/O, 1/I/L, U/V).
COMMENT_ALPHABET: Final = "23456789ABCDEFGHJKMNPQRSTWXYZ"
COMMENT_LENGTH: Final = 8  # 29^8 ≈ 5e11 comments
_NEW_ID_TRIES = 5
# A stream's cursor starts this long before the first order or watcher pass, whichever is first
# (clocks differ; a payment is never older than its order). By the bot's clock: the first read
# moves it back by the bot's lead on toncenter's clock (``services.ton.reader``).
CURSOR_MARGIN_S: Final = 600
TONKEEPER_TRANSFER: Final = "https://app.tonkeeper.com/transfer/"


def format_amount(asset: Asset, amount: int) -> str:
    """An amount in the asset's smallest unit as a decimal with its symbol (``1.5 GRAM``)."""
    decimals = DECIMALS[asset]
    whole, part = divmod(abs(amount), 10**decimals)
    text = str(whole)
    if part:
        text += "." + str(part).rjust(decimals, "0").rstrip("0")
    return f"{'-' if amount < 0 else ''}{text} {SYMBOLS[asset]}"


# Cyrillic and Greek capitals drawn like the Latin letters of the comments' alphabet: a comment
# typed on a Russian (or Greek) keyboard layout looks right and is read as what it looks like.
_LOOKALIKES: Final = str.maketrans("АВСЕНКМРТХУЅЈԚԜΑΒΕΖΗΚΜΝΡΤΥΧ", "ABCEHKMPTXYSJQWABEZHKMNPTYX")
# What a comment may hold that is not part of it: spaces, dashes of any kind, control and
# invisible characters (zero-width spaces, the soft hyphen, direction marks).
_NOT_PART: Final = frozenset({"Zs", "Zl", "Zp", "Pd", "Cc", "Cf"})
# Of those, what may stand inside an id among other words without parting it: dashes and
# invisible characters (``A1B2-C3D4``, a zero-width space pasted in), not spaces.
_INSIDE: Final = frozenset({"Pd", "Cf"})


def normalise_comment(text: str) -> str:
    """A payer's comment as an order id: upper case, what is not part of it dropped.

    Full-width letters and digits are the plain ones (NFKC), and Cyrillic or Greek letters
    that look like the alphabet's Latin ones are those.
    """
    return _part_of_id(_folded(text))


def comment_order_ids(text: str) -> list[str]:
    """The order ids a payer's comment may name, the likeliest first.

    The whole comment as ``normalise_comment`` reads it; then the same with its punctuation
    and symbols dropped too (``#A1B2…``, ``A1B2….``, ``«A1B2…»``); then each word of it that
    could be an id (``order A1B2…, thanks``), also with the dashes and invisible characters
    inside words dropped (``order A1B2-C3D4, thanks``, a zero-width space pasted in: they do
    not matter in an id, among words too). Empty when the comment holds nothing. The comment
    is folded (NFKC, upper case, lookalikes) once, for all of them.
    """
    plain = _folded(text)
    whole = _part_of_id(plain)
    bare = "".join(ch for ch in whole if unicodedata.category(ch)[0] in "LN")
    joined = "".join(ch for ch in plain if unicodedata.category(ch) not in _INSIDE)
    words = [*re.split(r"[\W_]+", plain), *re.split(r"[\W_]+", joined)]
    shaped = [
        word
        for word in words
        if len(word) == COMMENT_LENGTH and all(ch in COMMENT_ALPHABET for ch in word)
    ]
    return list(dict.fromkeys(found for found in (whole, bare, *shaped) if found))


def _folded(text: str) -> str:
    """NFKC, upper case, and the Cyrillic and Greek lookalikes as the Latin letters."""
    return unicodedata.normalize("NFKC", text).upper().translate(_LOOKALIKES)


def _part_of_id(plain: str) -> str:
    """A folded comment without what is not part of an id (spaces, dashes, invisibles)."""
    return "".join(ch for ch in plain if unicodedata.category(ch) not in _NOT_PART)


@dataclass(frozen=True, slots=True)
class TonPack:
    """Credit sold for ``amount`` of an asset (nanotons, or µUSDT); its id is the amount."""

    asset: Asset
    id: str
    amount: int
    units: int

    @classmethod
    def parse_list(cls, text: str, asset: Asset) -> list[TonPack]:
        """Parse ``amount:units,...`` (``1000000000:250000000``); ``ValueError`` names the entry."""
        packs: list[TonPack] = []
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            amount, sep, units = entry.partition(":")
            try:
                if not sep:
                    raise ValueError
                pack = cls(asset, str(int(amount)), int(amount), int(units))
            except ValueError:
                raise ValueError(f"pack {entry!r} is not amount:units in whole numbers") from None
            if pack.amount <= 0 or pack.units <= 0:
                raise ValueError(f"pack {entry!r}: amount and units must be positive")
            if any(other.amount == pack.amount for other in packs):
                raise ValueError(f"pack {entry!r}: two packs cost {pack.amount}")
            packs.append(pack)
        return sorted(packs, key=lambda pack: pack.amount)


@dataclass(frozen=True, slots=True)
class Invoice:
    """What the user needs to pay an order: address, amount, comment, expiry and links."""

    order: TonOrder
    address: str
    amount_text: str
    ton_link: str
    tonkeeper_link: str

    def qr_png(self, scale: int = 8) -> bytes:
        """A QR code of the ``ton://`` link as PNG bytes (error correction M, quiet zone 4)."""
        code = segno.make(self.ton_link, error="m", micro=False)
        out = io.BytesIO()
        code.save(out, kind="png", scale=scale, border=4)
        return out.getvalue()


class TonShop:
    """Sells packs for Gram (and USDT, when enabled) and makes the orders and invoices."""

    def __init__(  # noqa: PLR0913 -- the shop's configuration
        self,
        store: Store,
        wallet: WalletAddress,
        packs: Sequence[TonPack],
        *,
        usdt_master: WalletAddress | None = None,
        order_ttl: int = ORDER_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not any(pack.asset == "gram" for pack in packs):
            raise ValueError("the TON shop needs at least one Gram pack")
        if usdt_master is None and any(pack.asset == "usdt" for pack in packs):
            raise ValueError("USDT packs need the USDT master address")
        self._store = store
        self.wallet = wallet
        self.usdt_master = usdt_master
        self._packs = {
            asset: tuple(pack for pack in packs if pack.asset == asset) for asset in DECIMALS
        }
        self._order_ttl = order_ttl
        self._clock = clock

    def __repr__(self) -> str:
        return f"TonShop({self.wallet.friendly!r}, usdt={self.usdt_master is not None})"

    @property
    def assets(self) -> tuple[Asset, ...]:
        """The assets sold: Gram, and USDT when it has packs."""
        return tuple(asset for asset, packs in self._packs.items() if packs)

    def packs(self, asset: Asset) -> tuple[TonPack, ...]:
        """The packs sold for ``asset``, cheapest first."""
        return self._packs[asset]

    def fallback_rate(self, asset: Asset) -> tuple[int, int] | None:
        """(amount, units) of the asset's cheapest pack: the rate for a payment with no order.

        None when none of the asset is sold: another asset's rate counts other units.
        """
        packs = self._packs[asset]
        return (packs[0].amount, packs[0].units) if packs else None

    async def create_order(
        self, user_id: int, asset: Asset, pack_id: str, language: str | None = None
    ) -> Invoice:
        """Store a pending order for a pack and return its invoice.

        Raises ``UnknownPack`` for a pack not (or no longer) sold, ``TooManyOrders`` when the
        user has ``MAX_OPEN_ORDERS`` orders not expired nor paid in full, ``LedgerUnavailable`` when
        the order cannot be stored.
        """
        pack = next((p for p in self._packs.get(asset, ()) if p.id == pack_id), None)
        if pack is None:
            raise UnknownPack
        now = int(self._clock())
        for _ in range(_NEW_ID_TRIES):
            order = TonOrder(
                id="".join(secrets.choice(COMMENT_ALPHABET) for _ in range(COMMENT_LENGTH)),
                user_id=user_id,
                language=language,
                asset=asset,
                pack_id=pack.id,
                amount=pack.amount,
                units=pack.units,
                created_at=now,
                expires_at=now + self._order_ttl,
            )
            with ledger_failures():
                stored = await self._store.write(functools.partial(_insert_order, order=order))
            if stored is None:
                log.warning("ton.orders_capped", user_id=user_id, open=MAX_OPEN_ORDERS)
                raise TooManyOrders
            if stored:
                return self.invoice(order)
        raise LedgerUnavailable("no free order id")  # pragma: no cover -- 5 collisions in 5e11

    def invoice(self, order: TonOrder) -> Invoice:
        """The invoice for an order: the address to pay, the amount and the links."""
        query: dict[str, str | int] = {}
        if order.asset == "usdt":
            if self.usdt_master is None:
                raise UnknownPack
            query["jetton"] = self.usdt_master.bounceable
        query |= {"amount": order.amount, "text": order.id}
        path = f"{self.wallet.friendly}?{urlencode(query)}"
        return Invoice(
            order=order,
            address=self.wallet.friendly,
            amount_text=format_amount(order.asset, order.amount),
            ton_link="ton://transfer/" + path,
            tonkeeper_link=TONKEEPER_TRANSFER + path,
        )


def _insert_order(db: Database, *, order: TonOrder) -> bool | None:
    """Store the order; first make sure the watcher will read from before it.

    False when its id is taken; None, storing nothing, when the user has ``MAX_OPEN_ORDERS``
    orders not expired nor paid in full (as for Stars: each press of "buy" is one).
    """
    if storage.open_orders(db, order.user_id, order.created_at) >= MAX_OPEN_ORDERS:
        return None
    storage.get_cursor(db, order.asset, order.created_at - CURSOR_MARGIN_S)
    return storage.insert_order(db, order)
