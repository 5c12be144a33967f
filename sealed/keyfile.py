"""Ed25519 signing keys kept in files: the gateway's operator key and the bot's client key.

A key file is one line, ``<header> <b64url(32-byte seed)>``, mode 0600. The header names what
the key is for, so an operator key is never loaded as a client key by mistake. The verify key
(what the other side pins) is printed as base64url.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import stat
import sys
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ed25519

from common.durable import running, sync_folder
from common.stopping import CommandStopped
from sealed.encoding import b64d, b64e
from sealed.errors import MalformedMessage

if TYPE_CHECKING:
    from pathlib import Path

OPERATOR_KEY_HEADER = "veil-operator-key-v1"
CLIENT_KEY_HEADER = "veil-client-key-v1"
KEY_FOLDER_MODE = 0o700  # a folder keygen makes is its owner's alone, as the master key's is
# Drafts a new key may take: one another keygen settled away before its writer locked it goes.
_DRAFT_TRIES = 3


class KeyFileError(Exception):
    """A key file is missing, unreadable, malformed, of another kind, or too widely readable."""


def write_key_file(
    path: Path, header: str, key: ed25519.Ed25519PrivateKey | None = None
) -> ed25519.Ed25519PrivateKey:
    """Create a new key file (mode 0600, its folder 0700 if made), refusing to overwrite one.

    Written whole and synced under a name of its own (a draft, locked while written), then
    linked into place, then the folder synced: a power cut leaves no key file, or the whole
    one, never an empty or partial file under the key's name (which every later start refused,
    or a new key replaced). Stopped (a signal's handler raising) once linked, the key it made
    goes too: its verify key was never printed, so nothing pins it, and a keygen run again
    would find the name taken. ``key``: the key to write (a new one by default), so that a
    stop just after this returns can still tell it apart (``discard_key_file``).
    """
    key = key or ed25519.Ed25519PrivateKey.generate()
    try:
        path.parent.mkdir(mode=KEY_FOLDER_MODE, parents=True, exist_ok=True)
    except OSError as exc:  # not "already exists": that is the key's own refusal below
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from exc
    if path.exists() or path.is_symlink():
        raise KeyFileError(f"{path} already exists; not overwriting a key")
    try:
        for _ in range(_DRAFT_TRIES):
            draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                try:
                    if not _locked_draft(fd, draft):
                        continue  # settled away by another keygen before we locked it
                    handle.write(f"{header} {b64e(key.private_bytes_raw())}\n")
                    handle.flush()
                    os.fsync(fd)
                    os.link(draft, path)  # fails, rather than overwrite, if a key appeared
                    sync_folder(path.parent)
                except BaseException:  # a stop, a failed sync: no key whose verify key is unsaid
                    _unlink_if_ours(path, fd)  # (not one another keygen linked: not ours)
                    raise
                finally:
                    draft.unlink(missing_ok=True)
            return key
    except FileExistsError as exc:
        raise KeyFileError(f"{path} already exists; not overwriting a key") from exc
    except OSError as exc:  # a full disk, a file size limit: no key file left behind
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror}") from exc
    raise KeyFileError(f"cannot write key file {path}: another keygen kept removing its drafts")


def settle_key_drafts(path: Path) -> list[Path]:
    """Remove the drafts a keygen stopped short (SIGKILL, a power cut) left beside ``path``.

    Each holds a private key: one that never took its place (its verify key never printed, so
    nothing pins it), or the key's second, hidden name, which stayed (in every backup of the
    folder) after the key itself was removed. Neither is of use. A draft its writer still
    holds (its lock: a keygen running beside) is left to it. Returns the drafts removed (the
    new key's folder sync puts their going on the disk too).
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.[0-9]+\.[0-9a-f]{{8}}")
    try:
        names = sorted(entry.name for entry in path.parent.iterdir())
    except OSError:  # no folder yet, or none to look in: the key's own write says so
        return []
    removed = []
    for name in names:
        draft = path.with_name(name)
        if pattern.fullmatch(name) and _abandoned_draft_removed(draft):
            removed.append(draft)
    return removed


def discard_key_file(path: Path, header: str, key: ed25519.Ed25519PrivateKey) -> None:
    """Undo a keygen stopped before it printed ``key``'s verify key: its draft, and its file.

    The stop may come anywhere, after the key took its name too: the file goes only while it
    holds this very key (nothing pins it), never a key another keygen made. Called while the
    stop is under way: what cannot be removed stays for the next keygen, without a word here.
    """
    with contextlib.suppress(KeyFileError):
        settle_key_drafts(path)
    try:
        found = read_key_file(path, header)
    except KeyFileError:  # none made, or not ours to judge
        return
    if found.private_bytes_raw() == key.private_bytes_raw():
        path.unlink(missing_ok=True)


def _abandoned_draft_removed(draft: Path) -> bool:
    """Remove ``draft`` if no keygen holds it; whether it was removed here."""
    try:
        fd = os.open(draft, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # gone meanwhile, or no file of ours
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its writer holds it
        except OSError:  # a file system without flock: only a draft of a process gone goes
            if running(_draft_pid(draft)):
                return False
        if not _same_file(fd, draft):
            return False  # another keygen settled it meanwhile
        try:
            draft.unlink()
        except OSError as exc:  # a folder we may not write: the key could not be made there
            raise KeyFileError(f"cannot remove the key draft {draft}: {exc.strerror}") from exc
        return True
    finally:
        os.close(fd)


def _locked_draft(fd: int, draft: Path) -> bool:
    """Lock our new draft at ``fd`` until it is closed; False when another keygen removed it.

    Between making the draft and locking it, a keygen settling drafts may take it for one a
    stopped keygen left (unlocked) and remove it: then another draft is made.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:  # a file system without flock: the pid in its name tells
        return True
    return _same_file(fd, draft)


def _same_file(fd: int, path: Path) -> bool:
    """Whether the file open at ``fd`` is the one ``path`` names."""
    try:
        return os.path.samestat(os.fstat(fd), path.stat())
    except FileNotFoundError:
        return False


def _unlink_if_ours(path: Path, fd: int) -> None:
    """Remove ``path`` if it names the file open at ``fd`` (our draft, linked into place)."""
    if _same_file(fd, path):
        path.unlink(missing_ok=True)


def _draft_pid(draft: Path) -> int:
    """The pid a draft's name gives (``.<name>.<pid>.<hex>``)."""
    return int(draft.name.rsplit(".", 2)[1])


def run_keygen(path: Path, header: str) -> int:
    """``keygen --out FILE`` of the bot or the gateway: write a new key, print its verify key.

    Drafts a stopped keygen left are removed first, each said. Stopped (SIGTERM, Ctrl-C; run
    under ``common.stopping.stoppable_command``) before the verify key is printed, nothing is
    left: not its draft, not the key (which nothing could pin), so keygen can simply be run
    again. Exit 1 with one line when the file cannot be written.
    """
    key = ed25519.Ed25519PrivateKey.generate()
    try:
        for draft in settle_key_drafts(path):
            print(f"veil: removed {draft}, a key draft a stopped keygen left", file=sys.stderr)  # noqa: T201
        write_key_file(path, header, key)
        print(verify_key_text(key), flush=True)  # noqa: T201 -- the verify key is the output
    except KeyFileError as exc:
        print(f"veil: {exc}", file=sys.stderr)  # noqa: T201 -- a CLI's answer
        return 1
    except CommandStopped:
        discard_key_file(path, header, key)
        raise
    return 0


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
