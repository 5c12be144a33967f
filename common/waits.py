"""The wait an HTTP ``Retry-After`` asks for, read alike by the bot and the gateway.

The gateway reads its model server's (``gateway.vllm``), the bot a gateway's (the chat's
failover, the Mini App's relay): one reading, so a value one side takes the other does not
choke on. Each reader clamps it to its own most.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import re

# An HTTP-date in asctime's form, which names no zone (RFC 9110 §5.6.7: read as GMT).
_ASCTIME = re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}")
# A number of seconds: decimal digits (RFC 9110 §10.2.3), no fraction, no sign. Not ``float``'s
# syntax: it also reads ``inf``, ``1e9``, ``1_000`` and other scripts' digits.
_SECONDS = re.compile(r"\d+", re.ASCII)


def retry_after(value: str | None, now: float) -> float | None:
    """The seconds a ``Retry-After`` asks to wait from ``now`` (a Unix time), if any.

    RFC 9110 §10.2.3 allows a number of seconds (decimal digits alone: ``1.5`` is none, as the
    gateway always read it) or an HTTP-date (a date past is 0). All three HTTP-date forms are
    read (§5.6.7), asctime's, which names no zone, as GMT; a date of no known zone
    (``-0000``), two fields, a field too large for a date (``email.utils`` lets a year of
    twenty digits through to ``datetime``, which overflows), ``inf``, ``1e9`` or anything else
    is None: the reader's own back-off. Not clamped here (a number of 400 digits is ``inf``;
    ``float`` reads past ``int``'s 4,300-digit limit): each reader has its most.
    """
    value = (value or "").strip(" \t")
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" or an unknown zone's name: a time of no known zone
        if not _ASCTIME.fullmatch(value):
            return None
        when = when.replace(tzinfo=dt.UTC)
    return float(max(0, math.ceil(when.timestamp() - now)))
