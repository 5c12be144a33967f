"""The clients a gateway serves: pinned Ed25519 verify keys, each with a name and limits.

``VEIL_CLIENT_KEYS`` lists them, comma-separated, each as ``name:key`` followed by optional
``:limit=value`` parts::

    bot:3q2-7w…:streams=128:tpm=200000:max_tokens=2048,miniapp:Zm9v…:streams=16

- ``streams``: concurrent streams (default: ``VEIL_MAX_STREAMS``);
- ``tpm``: prompt + completion tokens per rolling minute (default 0: no limit);
- ``max_tokens``: the ceiling on a request's ``max_completion_tokens`` (default
  ``VEIL_MAX_COMPLETION_TOKENS``); a request asking for more is clamped to it.

Keys are base64url (what ``python -m bot keygen`` prints). A request signed by anything else
is refused with 401 before any HPKE work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sealed.auth import client_id, parse_verify_key
from sealed.errors import MalformedMessage

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_LIMITS = ("streams", "tpm", "max_tokens")
# The least each limit may be, and what it means there (tpm=0 is "no limit").
_LEAST = {"streams": (1, ""), "tpm": (0, " (0: no limit)"), "max_tokens": (1, "")}
_WHOLE = re.compile(r"-?[0-9]+")
_MOST_DIGITS = 18  # no limit is that large; a longer one is a mistake (and int() refuses 4300)


@dataclass(frozen=True)
class ClientPolicy:
    """One pinned client and its limits."""

    name: str
    verify_key: bytes
    max_streams: int
    tokens_per_minute: int
    max_completion_tokens: int

    @property
    def client_id(self) -> str:
        """The key's id as receipts and logs name it."""
        return client_id(self.verify_key)


def parse_client_keys(
    text: str, *, default_streams: int, default_max_tokens: int
) -> dict[bytes, ClientPolicy]:
    """Parse ``VEIL_CLIENT_KEYS``; raise ``ValueError`` naming the first bad entry."""
    clients: dict[bytes, ClientPolicy] = {}
    names: set[str] = set()
    for number, entry in enumerate((e.strip() for e in text.split(",") if e.strip()), 1):
        name, named, rest = entry.partition(":")
        key_text, _, options = rest.partition(":")
        # A verify key pasted alone, as python -m bot keygen prints it (43 characters, too
        # long for a name); a name alone is a name whose key is missing, told below.
        if not named and not _NAME.fullmatch(name):
            raise ValueError(
                f"client {number}: no name before its key: write it as name:key"
                " (bot:<the verify key python -m bot keygen printed>)"
            )
        if not _NAME.fullmatch(name):
            raise ValueError(f"client {number}: a name of 1 to 32 letters, digits, '_', '.', '-'")
        try:
            key = parse_verify_key(key_text)
        except MalformedMessage as exc:
            raise ValueError(f"client {name}: not a base64url Ed25519 verify key") from exc
        limits = {"streams": default_streams, "tpm": 0, "max_tokens": default_max_tokens}
        for option in filter(None, options.split(":")):
            limit, _, value = option.partition("=")
            if limit not in _LIMITS:
                raise ValueError(
                    f"client {name}: unknown limit {limit!r} (use streams, tpm or max_tokens)"
                )
            limits[limit] = _limit(name, limit, value)
        if name in names or key in clients:
            raise ValueError(f"client {name}: listed twice")
        names.add(name)
        clients[key] = ClientPolicy(
            name, key, limits["streams"], limits["tpm"], limits["max_tokens"]
        )
    if not clients:
        raise ValueError("at least one client key is required (python -m bot keygen prints one)")
    return clients


def _limit(name: str, limit: str, value: str) -> int:
    """``value`` of ``limit`` as a number; ``ValueError`` saying which rule it breaks."""
    if not _WHOLE.fullmatch(value):
        raise ValueError(f"client {name}: {limit} must be a whole number, not {value!r}")
    significant = value.lstrip("-").lstrip("0")  # 007 is 7: zeros in front are no digits
    if len(significant) > _MOST_DIGITS:
        raise ValueError(
            f"client {name}: {limit} must be under 10^{_MOST_DIGITS},"
            f" not a {len(significant)}-digit number"
        )
    number, (least, meaning) = int(significant or "0"), _LEAST[limit]
    if value.startswith("-"):
        number = -number
    if number < least:
        raise ValueError(f"client {name}: {limit} must be {least} or more{meaning}, not {number}")
    return number
