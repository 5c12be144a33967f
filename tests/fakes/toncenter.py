"""The fake toncenter v3 indexer of the TON tests: the playground's emulated toncenter.

It lives in ``playground/toncenter.py`` (``python -m playground`` serves it too); the tests
import it from here, as before.
"""

from playground.toncenter import (
    PLAY_PAYER,
    USDT_MASTER,
    FakeToncenter,
    Request,
    comment_boc,
    hex_hash,
    jetton_wallet,
    new_hash,
    op_boc,
    raw,
    transfer_of_link,
)

__all__ = [
    "PLAY_PAYER",
    "USDT_MASTER",
    "FakeToncenter",
    "Request",
    "comment_boc",
    "hex_hash",
    "jetton_wallet",
    "new_hash",
    "op_boc",
    "raw",
    "transfer_of_link",
]
