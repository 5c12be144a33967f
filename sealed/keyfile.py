"""Ed25519 signing keys kept in files: the gateway's operator key and the bot's client key.

A key file is one line, ``<header> <b64url(32-byte seed)>``, mode 0600. The header names what
the key is for, so an operator key is never loaded as a client key by mistake. The verify key
(what the other side pins) is printed as base64url.
"""

from __future__ import annotations

import os
import secrets
import stat
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ed25519

from common.durable import sync_folder
from sealed.encoding import b64d, b64e
from sealed.errors import MalformedMessage

if TYPE_CHECKING:
    from pathlib import Path

OPERATOR_KEY_HEADER = "veil-operator-key-v1"
CLIENT_KEY_HEADER = "veil-client-key-v1"


class KeyFileError(Exception):
    """A key file is missing, unreadable, malformed, of another kind, or too widely readable."""


def write_key_file(path: Path, header: str) -> ed25519.Ed25519PrivateKey:
    """Create a new key file (mode 0600), refusing to overwrite one.

    Written whole and synced under a name of its own, then linked into place, then the folder
    synced: a power cut leaves no key file, or the whole one, never an empty or partial file
    under the key's name (which every later start refused, or a new key replaced).
    """
    key = ed25519.Ed25519PrivateKey.generate()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # not "already exists": that is the key's own refusal below
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from exc
    if path.exists() or path.is_symlink():
        raise KeyFileError(f"{path} already exists; not overwriting a key")
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from exc
    try:
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(f"{header} {b64e(key.private_bytes_raw())}\n")
                handle.flush()
                os.fsync(fd)
            os.link(draft, path)  # fails, rather than overwrite, if a key appeared meanwhile
        finally:
            draft.unlink(missing_ok=True)
        sync_folder(path.parent)
    except FileExistsError as exc:
        raise KeyFileError(f"{path} already exists; not overwriting a key") from exc
    except OSError as exc:  # a full disk, a file size limit: no key file left behind
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror}") from exc
    return key


def read_key_file(path: Path, header: str) -> ed25519.Ed25519PrivateKey:
    """Load a key file of the kind ``header`` names; refuse it if group or others may read it."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii")
    except OSError as exc:  # not there, a folder, not ours to read: say which
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise KeyFileError(f"cannot read key file {path}: it is not text") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):  # refused, not fixed: it may have been read
        raise KeyFileError(
            f"key file {path} has mode {stat.S_IMODE(mode):04o}, so group or others may read"
            " it; it must be mode 0600: run chmod 600 on it"
        )
    found, _, encoded = text.strip().partition(" ")
    if found != header:
        raise KeyFileError(f"{path} is not a {header} file")
    try:
        return ed25519.Ed25519PrivateKey.from_private_bytes(b64d(encoded))
    except (MalformedMessage, ValueError) as exc:
        raise KeyFileError(f"key file {path} is malformed") from exc


def verify_key_text(key: ed25519.Ed25519PrivateKey) -> str:
    """The verify key the other side pins, as base64url."""
    return b64e(key.public_key().public_bytes_raw())
