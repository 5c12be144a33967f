"""Paying in Gram (formerly Toncoin) and USDT on TON, beside the Stars.

- ``chain``: addresses (``pytoniq-core``), transaction hashes, comments, toncenter records as
  ``Transfer``s;
- ``toncenter``: the toncenter v3 client (``aiohttp``);
- ``shop``: packs, orders and the invoice (links, QR code);
- ``books``: each transfer recorded once and credited at its order's rate, or kept for the
  admins; reconciling with the chain;
- ``rules``: how a transfer is judged (dust, credited, unmatched), credited and audited;
- ``memory``: what the watcher remembers of the chain (cursors, skipped transfers);
- ``watcher``: the background task that polls toncenter from the persisted cursor.

The storage is ``models.ton``; docs/payments-ton.md tells the whole story.
"""
