"""Ed25519 signing keys kept in files: the gateway's operator key and the bot's client key.

A key file is one line, ``<header> <b64url(32-byte seed)>``, mode 0600. The header names what
the key is for, so an operator key is never loaded as a client key by mistake. The verify key
(what the other side pins) is printed as base64url.
"""

from __future__ import annotations

import contextlib
import stat
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ed25519

from common.durable import abandoned, drafts, write_new
from common.stopping import CommandStopped, stoppable_command
from sealed.encoding import b64d, b64e
from sealed.errors import MalformedMessage

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

OPERATOR_KEY_HEADER = "veil-operator-key-v1"
CLIENT_KEY_HEADER = "veil-client-key-v1"
KEY_FOLDER_MODE = 0o700  # a folder keygen makes is its owner's alone, as the master key's is


class KeyFileError(Exception):
    """A key file is missing, unreadable, malformed, of another kind, or too widely readable."""


def write_key_file(
    path: Path, header: str, key: ed25519.Ed25519PrivateKey | None = None
) -> ed25519.Ed25519PrivateKey:
    """Create a new key file (mode 0600, its folder 0700 if made), refusing to overwrite one.

    Written whole and synced as a draft, then linked into place (``common.durable.write_new``):
    a power cut leaves no key file, or the whole one, never an empty or partial file under the
    key's name (which every later start refused, or a new key replaced). Stopped (a signal's
    handler raising) once linked, the key it made goes too: its verify key was never printed,
    so nothing pins it, and a keygen run again would find the name taken. ``key``: the key to
    write (a new one by default), so that a stop just after this returns can still tell it apart
    (``discard_key_file``).
    """
    key = key or ed25519.Ed25519PrivateKey.generate()
    try:
        path.parent.mkdir(mode=KEY_FOLDER_MODE, parents=True, exist_ok=True)
    except OSError as exc:  # not "already exists": that is the key's own refusal below
        raise KeyFileError(f"cannot create key file {path}: {exc.strerror}") from exc
    if path.exists() or path.is_symlink():
        raise KeyFileError(f"{path} already exists; not overwriting a key")
    try:
        write_new(path, f"{header} {b64e(key.private_bytes_raw())}\n".encode("ascii"), 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{path} already exists; not overwriting a key") from exc
    except OSError as exc:  # a full disk, a file size limit: no key file left behind
        raise KeyFileError(f"cannot write key file {path}: {exc.strerror}") from exc
    return key


def settle_key_drafts(path: Path) -> list[Path]:
    """Remove the drafts a keygen stopped short (SIGKILL, a power cut) left beside ``path``.

    Each holds a private key: one that never took its place (its verify key never printed, so
    nothing pins it), or the key's second, hidden name, which stayed (in every backup of the
    folder) after the key itself was removed. Neither is of use. A draft its writer still
    holds (its lock: a keygen running beside) is left to it. Returns the drafts removed (the
    new key's folder sync puts their going on the disk too).
    """
    removed = []
    for draft, pid in drafts(path):
        with abandoned(draft, pid) as gone:
            if not gone:
                continue
            try:
                draft.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:  # a folder we may not write: the key could not be made there
                raise KeyFileError(f"cannot remove the key draft {draft}: {exc.strerror}") from exc
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


KEYGEN_AFTER_STOP = "no key was written; run it again"  # after "veil: keygen stopped by …: "


def keygen_command(args: Sequence[str], header: str) -> Callable[[], int] | None:
    """``keygen --out FILE`` of the bot or the gateway, to run; None for any other arguments.

    The two ``__main__`` modules look for it before they import the rest of themselves: a
    keygen needs this module alone (~0.15 s of CPU), where the whole bot or gateway takes
    ~0.7 s more to import. A ``FILE`` that reads as an option (``-h``) is left to their own
    argument handling, which says what it means.
    """
    if len(args) != 3 or list(args[:2]) != ["keygen", "--out"] or args[2].startswith("-"):  # noqa: PLR2004
        return None
    return partial(keygen_run, Path(args[2]), header)


def keygen_run(path: Path, header: str) -> int:
    """Run ``run_keygen`` as a command a stop (SIGTERM, Ctrl-C) ends in one line; its exit code.

    The one way both ``__main__`` modules run a keygen, whether found before their imports
    (``keygen_command``) or by their own argument handling (the gateway's ``argparse``).
    """
    return stoppable_command(lambda: run_keygen(path, header), "keygen", KEYGEN_AFTER_STOP)


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
