"""``python -m bot``: run Veil's Telegram bot (long polling, or a webhook when configured).

``python -m bot reconcile [--fix]`` compares the ledger with Telegram (and books what it lacks);
``python -m bot audit`` checks every charge's signed receipt and price again, offline;
``python -m bot backup FILE`` copies the database with SQLite's online backup API;
``python -m bot keygen --out FILE`` makes the client key that signs every request to the
gateways and prints its verify key.
"""

from __future__ import annotations

from common.firstlines import capture_warnings

# Run as ``python -m bot``: before the rest is imported, so that a warning raised while it
# is (a library's, say, or one while ``common.logs`` loads structlog) is a JSON line too; an
# operator's log shipper reads every line as JSON from the first. Not when a test imports
# this module.
if __name__ == "__main__":
    capture_warnings()

from common.logs import capture_early

if __name__ == "__main__":
    capture_early()

import sys

from common.stopping import process_main
from sealed.keyfile import CLIENT_KEY_HEADER, keygen_command

# ``keygen --out FILE`` needs none of the rest (settings, storage, aiogram): made before it is
# imported.
if __name__ == "__main__" and (keygen := keygen_command(sys.argv[1:], CLIENT_KEY_HEADER)):
    sys.exit(process_main(keygen))

import asyncio
import errno
import socket
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bot.settings import BotSettings
from common.connections import bind_failure
from common.logs import configure_logging, describe, without_credentials
from common.settings import SettingsError, load_settings
from common.stopping import (
    CommandStopped,
    run_command_loop,
    stoppable,
    stoppable_command,
)
from models import DataFolderError, MasterKeyFileError, StorageError
from models.atrest import settle_drafts
from models.backup import BackupError, backup_database
from models.database import DataInUse, claim_database
from models.journal import JournalOutdated
from models.store import holds_data_keys
from sealed.keyfile import (
    KeyFileError,
    read_key_file,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519

USAGE = "usage: python -m bot [reconcile [--fix] | audit | backup FILE | keygen --out FILE]"
HELP = """\
With no command, serve the bot: long polling, or a webhook when VEIL_WEBHOOK_URL is set.
  reconcile [--fix]  compare the ledger with Telegram's Stars payments (and the TON chain's
                     when VEIL_TON_ADDRESS is set); --fix books what the ledger lacks
  audit              check every charge's signed receipt and price again, offline
  backup FILE        copy the database, and the payment journal to FILE.journal, also while
                     the bot runs
  keygen --out FILE  make the bot's client key and print its verify key for the gateways
Settings are VEIL_* environment variables (README.md); every command but keygen needs the
bot's own: VEIL_BOT_TOKEN, VEIL_OPERATOR_KEYS and its VEIL_DATA_DIR."""
COMMANDS: tuple[list[str], ...] = ([], ["reconcile"], ["reconcile", "--fix"], ["audit"])
# What a command stopped by SIGTERM or Ctrl-C left, after "veil: NAME stopped by SIGTERM: ".
AFTER_STOP = {
    "backup": "no backup was kept; run it again",
    "audit": "it wrote nothing; run it again",
    "reconcile": "run it again; what --fix booked stays booked, each payment once",
}


def main(argv: list[str] | None = None) -> int:
    """Entry point: serve the bot, ``reconcile``, ``audit`` or ``backup`` it, or ``keygen``."""
    capture_early()  # a warning while the settings are read is a JSON line too
    args = sys.argv[1:] if argv is None else argv
    # Asked for, alone or after a command: the usage and what each command does, exit 0.
    # (`backup --help` copied the database to a file named --help; `keygen --out -h` wrote
    # the key to -h. A file of that name is still ./--help.)
    if "-h" in args or "--help" in args:
        print(f"{USAGE}\n\n{HELP}")  # noqa: T201
        return 0
    if keygen := keygen_command(args, CLIENT_KEY_HEADER):
        return keygen()
    # backup FILE, FILE naming a file: "" or "/" name none, and no copy could be named after it.
    backup = args[:1] == ["backup"] and len(args) == 2 and Path(args[1]).name != ""  # noqa: PLR2004
    if args not in COMMANDS and not backup:
        print(USAGE, file=sys.stderr)  # noqa: T201
        return 2
    if args:  # a command: a stop is one line, and the shell's exit code for it
        return stoppable_command(lambda: _run(args), args[0], AFTER_STOP[args[0]])
    # Serving: a stop asked for before the bot takes the signals is one line, and exit 0.
    return stoppable(lambda: _run(args), "veil.bot", "bot.stopped_before_start")


def _run(args: list[str]) -> int:
    try:
        settings = load_settings(BotSettings)
    except SettingsError as exc:
        print(exc.code, *command_settings(args), file=sys.stderr)  # noqa: T201 -- one line
        return 2
    configure_logging(settings.log_level)
    return run_command(settings, args)


def command_settings(args: list[str]) -> list[str]:
    """For a bad setting of ``reconcile``, ``audit`` or ``backup``: why a command wants it.

    An operator backing up next to ``scripts/run`` (which gives the bot its settings itself)
    was told only that ``VEIL_BOT_TOKEN`` was missing, which a backup does not seem to need.
    """
    if not args:  # serving: the setting is plainly the bot's
        return []
    why = (
        f"({args[0]} reads the bot's own settings: give it the ones the bot runs with;"
        ' docs/operations.md, "Backups", has those of scripts/run)'
    )
    return [why]


def run_command(settings: BotSettings, args: list[str]) -> int:
    """Run the command ``args`` names (serving the bot when it names none)."""
    line = unreachable_data(settings)
    if line is None and args and not settings.database_path.is_file():
        line = no_database(settings)  # backup, audit and reconcile read one; they make none
    if line is not None:
        print(line, file=sys.stderr)  # noqa: T201 -- one clear line for the operator
        return 2
    if args[:1] == ["backup"]:
        return run_backup(settings, Path(args[1]))
    for line in settle_drafts(settings.master_key_path):
        print(line, file=sys.stderr)  # noqa: T201 -- one line for the operator
    if lost_master_key(settings):
        return 2
    if args[:1] == ["reconcile"]:
        return run_reconcile(settings, fix=args[1:] == ["--fix"])
    if args == ["audit"]:
        return run_audit(settings)
    client_key = load_client_key(settings)
    return 2 if client_key is None else run_bot(settings, client_key)


def no_database(settings: BotSettings) -> str:
    """The line for a command run on a data folder that holds no database: refused.

    ``audit`` and ``reconcile`` on a mistyped ``VEIL_DATA_DIR`` made a new master key and an
    empty database there; the audit then said every charge proves (of none) and ``reconcile
    --fix`` booked Telegram's payments into that empty ledger, apart from the bot's. Only the
    serving bot makes the data folder, on its first start. Exit 2, as for any setting that
    cannot be used (``backup`` said 1, as for a backup that failed).
    """
    return f"veil: setting VEIL_DATA_DIR: no database at {settings.database_path}"


def unreachable_data(settings: BotSettings) -> str | None:
    """The line for a data folder (or master key file) that cannot even be looked in, else None.

    A folder the bot may not enter (another user's, mode 0700) fails every look inside it
    (``PermissionError``); no command expected that, and each ended in a traceback. A folder or
    file that is simply not there yet is no failure: the first start makes it.
    """
    try:
        settings.database_path.exists()
    except OSError as exc:
        return (
            f"veil: setting VEIL_DATA_DIR: the data folder {settings.data_dir} cannot be used:"
            f" cannot look in it: {exc.strerror}"
        )
    if (reason := _not_a_folder(settings.data_dir)) is not None:
        return (
            f"veil: setting VEIL_DATA_DIR: the data folder {settings.data_dir} cannot be used:"
            f" {reason}"
        )
    path = settings.master_key_path
    try:
        path.exists()
    except OSError as exc:
        failure = MasterKeyFileError(f"cannot look for master key file {path}: {exc.strerror}")
        return storage_failure(settings, failure)
    return None


def _not_a_folder(folder: Path) -> str | None:
    """Why ``folder`` (or a folder above it) stands where no folder can be made; else None.

    The data folder is made at the first start; a file in its place, or a link to nothing (a
    disk not mounted), failed deep inside, with "…veil.db.lock: File exists" or "master.key:
    Not a directory" after the setting's name.
    """
    for path in (folder, *folder.parents):
        try:
            if path.exists():
                return None if path.is_dir() else f"{path} is a file, not a folder"
            if path.is_symlink():
                return _broken_link(path)
        except OSError:  # one that cannot be looked at is the folder's own line's to tell
            return None
    return None


def _broken_link(link: Path) -> str:
    """Why the link ``link`` leads to no folder: nothing at its end, or no end (a loop)."""
    try:
        link.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # not missing: it leads back to itself
            return f"{link} is a link that cannot be followed: {exc.strerror}"
    return f"{link} is a link to {link.readlink()}, which is not there"


def lost_master_key(settings: BotSettings) -> bool:
    """Whether the master key file is gone while the database holds keys it wrapped (said once).

    Every command would otherwise make a new master key, which opens none of the history, and
    refuse to start with it as "the wrong key" from then on.
    """
    path, database = settings.master_key_path, settings.database_path
    if path.exists() or not holds_data_keys(database):
        return False
    print(  # noqa: T201 -- one clear line for the operator
        f"veil: the master key file {path} is missing, but {database} holds history sealed"
        " under it: put it back from its backup (VEIL_MASTER_KEY_FILE names where it is); a new"
        " key would open none of it",
        file=sys.stderr,
    )
    return True


def load_client_key(settings: BotSettings) -> ed25519.Ed25519PrivateKey | None:
    """The client key, or None after one line saying what is wrong with it (or them).

    ``VEIL_OPERATOR_KEYS`` holding its own verify key is wrong with them. A missing key is
    told how to make and pin one; a key that is there but refused (too widely readable, of
    another kind) is not: keygen would refuse to overwrite it, and a new key must be pinned in
    every gateway again.
    """
    path = settings.client_key_path
    try:
        key = read_key_file(path, CLIENT_KEY_HEADER)
    except KeyFileError as exc:
        make = (
            f"; make one with python -m bot keygen --out {path} and pin the key it prints in"
            " each gateway's VEIL_CLIENT_KEYS"
        )
        try:
            there = path.exists() or path.is_symlink()
        except OSError:  # a folder we may not look in: it is there to someone
            there = True
        line = f"veil: setting VEIL_CLIENT_KEY_FILE: {exc}{'' if there else make}"
        print(line, file=sys.stderr)  # noqa: T201 -- one clear line for the operator
        return None
    if key.public_key().public_bytes_raw() in settings.verify_keys:
        # The two keygens' printed keys swapped: every bundle would be refused as signed by a
        # key not pinned, and every question fail, the bot serving all the same.
        print(  # noqa: T201 -- one clear line for the operator
            "veil: setting VEIL_OPERATOR_KEYS is invalid: it holds the bot's own client verify"
            f" key ({path}); give the key python -m gateway keygen printed",
            file=sys.stderr,
        )
        return None
    return key


def run_bot(settings: BotSettings, client_key: ed25519.Ed25519PrivateKey) -> int:
    """Serve until SIGINT/SIGTERM; a start that fails ends in one line for the operator."""
    # Webhook replicas may share the database; a long-polling bot must be its only one (it
    # releases every hold left open when it starts, and Telegram serves one poller). Claimed
    # before aiogram loads (seconds of start-up), so a second bot is refused at once.
    try:
        with claim_database(settings.database_path, shared=settings.webhook_url is not None):
            unbound = listen_check(settings)
            if unbound is not None:
                print(unbound, file=sys.stderr)  # noqa: T201 -- one clear line for the operator
                return 2
            return serve_claimed(settings, client_key)
    except StorageError as exc:  # the claim's own: another bot serves, or no lock file
        print(storage_line(settings, exc), file=sys.stderr)  # noqa: T201 -- one clear line
        return 2


def serve_claimed(settings: BotSettings, client_key: ed25519.Ed25519PrivateKey) -> int:
    """``run_bot`` once the database is claimed: load aiogram, serve, say what stopped it."""
    # Imported after the settings check and the claim, so either fails fast, before aiogram.
    from aiogram.exceptions import ClientDecodeError, TelegramAPIError  # noqa: PLC0415

    from bot.app import run_polling, run_webhook  # noqa: PLC0415
    from bot.conflict import TokenInUse, TokenRefused  # noqa: PLC0415

    serve = run_webhook if settings.webhook_url else run_polling
    try:
        asyncio.run(serve(settings, client_key))
    except (TokenInUse, TokenRefused) as exc:
        print(exc.line(), file=sys.stderr)  # noqa: T201 -- one clear line for the operator
        return 2
    except (StorageError, ValueError, OSError, TelegramAPIError, ClientDecodeError) as exc:
        failure = start_failure(settings, exc)
        if failure is None:
            raise
        line, code = failure
        print(line, file=sys.stderr)  # noqa: T201 -- one clear line for the operator
        return code
    return 0


def start_failure(settings: BotSettings, exc: Exception) -> tuple[str, int] | None:
    """The line and exit code for what stopped the bot from serving; None for a bug.

    Never the token: a refused one is not quoted, and a network error's URL has it cut out;
    nor a password in ``VEIL_TELEGRAM_API``.
    """
    from aiogram.exceptions import (  # noqa: PLC0415 -- see run_bot
        ClientDecodeError,
        TelegramBadRequest,
        TelegramNetworkError,
        TelegramServerError,
        TelegramUnauthorizedError,
    )

    line: str | None = None
    telegram = without_credentials(str(settings.telegram_api))  # a proxy's password: not shown
    if isinstance(exc, StorageError):
        line = storage_line(settings, exc)
    elif isinstance(exc, ValueError):
        line = f"veil: {exc}"
    elif isinstance(exc, TelegramUnauthorizedError):
        line = (
            f"veil: Telegram refused the bot token ({_method(exc)}: Unauthorized): set"
            " VEIL_BOT_TOKEN to the token @BotFather gave this bot"
        )
    elif isinstance(exc, TelegramBadRequest) and _method(exc) == "setWebhook":
        line = webhook_refused(settings, exc.message)
    elif isinstance(exc, TelegramNetworkError):  # start-up's calls: serving retries its own
        line = (
            f"veil: cannot reach Telegram at {telegram} (VEIL_TELEGRAM_API):"
            f" {describe(exc).removeprefix('TelegramNetworkError: ')}"
        )
    elif isinstance(exc, TelegramServerError | ClientDecodeError):
        # A Bot API failing for now (a 5xx past the session's retry), or a proxy's page in
        # its place: try again later, as for a Telegram out of reach.
        line = (
            f"veil: Telegram at {telegram} (VEIL_TELEGRAM_API) could not serve the"
            f" bot now: {describe(exc)}"
        )
    elif isinstance(exc, OSError):
        line = listen_failure(settings, exc)
    if line is None:
        return None
    away = TelegramNetworkError | TelegramServerError | ClientDecodeError
    return line, 1 if isinstance(exc, away) else 2


def storage_line(settings: BotSettings, exc: StorageError) -> str:
    """The line for a database another bot serves from, or one that cannot be opened.

    Or a payment journal newer code migrated while this process served (``JournalOutdated``).
    """
    if isinstance(exc, JournalOutdated):
        return f"veil: {exc} (a newer version serves this data: run that one)"
    if isinstance(exc, DataInUse):
        return (
            f"veil: another bot is serving from {settings.database_path}: stop it first (a"
            " long-polling bot must be the only one on its database; webhook replicas may"
            " share one)"
        )
    return storage_failure(settings, exc)


def storage_failure(settings: BotSettings, exc: StorageError) -> str:
    """The line for a data store that cannot be opened; a file or folder names its setting.

    A database the data folder's file system would not write (read-only, full) is the
    folder's too (``_refused_by_the_folder``).

    A master key file at its default place (``VEIL_MASTER_KEY_FILE`` unset) is in the data
    folder: the setting to look at is ``VEIL_DATA_DIR``.
    """
    if isinstance(exc, MasterKeyFileError) and settings.master_key_file is None:
        return (
            f"veil: setting VEIL_DATA_DIR: {exc} (the master key's default place in the data"
            " folder; VEIL_MASTER_KEY_FILE names another)"
        )
    if isinstance(exc, MasterKeyFileError):
        return f"veil: setting VEIL_MASTER_KEY_FILE: {exc}"
    if isinstance(exc, DataFolderError) or _refused_by_the_folder(exc):
        return (
            f"veil: setting VEIL_DATA_DIR: the data folder {settings.data_dir} cannot be"
            f" used: {exc}"
        )
    return f"veil: cannot open the data store: {exc}"


def _method(exc: Exception) -> str:
    """The Bot API method a Telegram error came from (``?`` when it names none)."""
    return str(getattr(getattr(exc, "method", None), "__api_method__", "?"))


def webhook_refused(settings: BotSettings, description: str) -> str:
    """The line for a webhook URL Telegram will not post to, in Telegram's own words.

    Telegram posts only to HTTPS on ports 80, 88, 443 or 8443 at a host it can resolve; its
    reply says which rule the URL broke. The URL is shown without its path and query, which may
    hold a secret of their own.
    """
    parts = urlsplit(str(settings.webhook_url))
    where = without_credentials(f"{parts.scheme}://{parts.netloc}")
    return f"veil: Telegram refused the webhook URL {where} (VEIL_WEBHOOK_URL): {description}"


# SQLite's primary result codes for a file the file system would not write: read-only (the
# folder or the file), cannot open, I/O error (a write refused: a size limit), disk full.
_FOLDER_REFUSALS = frozenset(
    {
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
    }
)
_PRIMARY_CODE = 0xFF  # an extended result code's low byte is its primary code


def _refused_by_the_folder(exc: StorageError) -> bool:
    """Whether SQLite failed because the data folder's file system would not write the file.

    Not a file that is no database, nor a migration's own refusal: those are the store's.
    """
    cause = exc.__cause__
    code = getattr(cause, "sqlite_errorcode", None)
    return (
        isinstance(cause, sqlite3.Error)
        and isinstance(code, int)
        and (code & _PRIMARY_CODE in _FOLDER_REFUSALS)
    )


def listen_failure(settings: BotSettings, exc: OSError) -> str | None:
    """One line naming the listener whose address could not be bound; None for another error.

    A host that names no address (``socket.gaierror``: only a listener's host is looked up
    here, Telegram's and the gateways' errors come wrapped by aiohttp) is one too.
    """
    if not isinstance(exc, socket.gaierror) and "attempting to bind on address" not in str(exc):
        return None
    return bind_failure(bot_listeners(settings), exc)


def bot_listeners(settings: BotSettings) -> list[tuple[str, str, int]]:
    """The bot's listeners: (setting prefix, host, port) each, as ``bind_failure`` names them."""
    listeners = [("VEIL_BOT_METRICS", settings.bot_metrics_host, settings.bot_metrics_port)]
    if settings.webhook_url is not None:
        listeners.append(("VEIL_WEBHOOK", settings.webhook_host, settings.webhook_port))
    if settings.webapp_url is not None:
        listeners.append(("VEIL_WEBAPP", settings.webapp_host, settings.webapp_port))
    return listeners


def listen_check(settings: BotSettings) -> str | None:
    """The line for a listener whose address cannot be bound; None when each can be.

    Each is bound as serving binds it (``loop.create_server``, all at once) and let go, before
    aiogram loads: a port taken or a host that names no address is told at once, not after
    seconds of start-up. Serving binds them again, and says the same should one be taken since.
    """
    try:
        asyncio.run(_bind_each(bot_listeners(settings)))
    except OSError as exc:
        return listen_failure(settings, exc)
    return None


async def _bind_each(listeners: list[tuple[str, str, int]]) -> None:
    """Bind every listener's address together, then close them all."""
    loop = asyncio.get_running_loop()
    servers: list[asyncio.Server] = []
    try:
        for _, host, port in listeners:
            servers.append(await loop.create_server(asyncio.Protocol, host, port))
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()


def run_backup(settings: BotSettings, target: Path) -> int:
    """Copy the database (and the payment journal beside it) while the bot may be running.

    Both copies or neither: a name taken (a journal's copy left from an older backup) is
    refused before anything is copied, and a copy that fails takes the ones made before it
    away, so a restore never pairs a database with a journal from another time.

    The journal is copied first. An entry is marked finished only once the ledger holds its
    booking, and a restore books again only the entries not finished: with the database
    copied first, a payment booked and told between the two copies was finished in the
    journal's copy and absent from the database's, so the restore credited it nowhere. Copied
    in this order, each entry finished in the journal's copy is in the database's, and one
    journaled after it was copied is in the database's or in neither (``reconcile`` books it).
    """
    copies = [(settings.database_path, target)]
    if settings.journal_path.is_file():
        journal = (settings.journal_path, target.with_name(target.name + ".journal"))
        copies.insert(0, journal)
    try:
        made = copy_together(copies)
    except BackupError as exc:
        print(f"veil: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    for line in made:
        print(line)  # noqa: T201 -- the report
    print(  # noqa: T201 -- the report
        f"the history in it opens only with the master key {settings.master_key_path}:"
        " keep a copy of that key apart from the backup"
    )
    return 0


def copy_together(copies: list[tuple[Path, Path]]) -> list[str]:
    """Back up each (source, copy), all or none; a line for each copy made.

    A copy that fails, or a stop (SIGTERM, Ctrl-C) at any point, takes the copies made before
    it away, the one under way too should the stop come just after it took its name.
    """
    for _, copy in copies:
        if copy.exists():
            raise BackupError(f"{copy} already exists; not overwriting a backup")
    made: dict[Path, str] = {}
    try:
        for source, copy in copies:
            made[copy] = ""  # under way
            pages = backup_database(source, copy)
            made[copy] = f"backed up {source} to {copy} ({pages} pages)"
    except BackupError:
        for copy, line in made.items():
            if line:  # not the one refused: its name may be another backup's
                copy.unlink(missing_ok=True)
        raise
    except CommandStopped:
        for copy in made:
            copy.unlink(missing_ok=True)
        raise
    return list(made.values())


def run_reconcile(settings: BotSettings, *, fix: bool = False) -> int:
    """Print every difference between the ledger and Telegram (and the TON chain); exit 1 if any.

    With ``fix``, first book what Telegram lists but the ledger lacks, one line each.
    """
    from aiogram.exceptions import ClientDecodeError, TelegramAPIError  # noqa: PLC0415

    from bot.reconcile import reconcile  # noqa: PLC0415 -- see run_bot
    from services.ton.errors import ToncenterUnavailable  # noqa: PLC0415

    try:
        count, differences, fixed = run_command_loop(reconcile(settings, fix=fix))
    except (StorageError, TelegramAPIError, ClientDecodeError) as exc:  # as for serving
        failure = start_failure(settings, exc)
        if failure is None:
            raise
        print(failure[0], file=sys.stderr)  # noqa: T201 -- one clear line for the operator
        return 2
    except ToncenterUnavailable as exc:
        print(  # noqa: T201 -- one clear line for the operator
            f"veil: cannot read the TON payments from toncenter at"
            f" {without_credentials(settings.toncenter)}"
            f" (VEIL_TONCENTER_URL): {exc}",
            file=sys.stderr,
        )
        return 2
    for line in [*fixed, *differences]:
        print(line)  # noqa: T201 -- the command's report
    if differences:
        print(f"{len(differences)} difference(s) in {count} transaction(s)")  # noqa: T201
        return 1
    print(f"{reconciled_with(settings)} agree on {count} transaction(s)")  # noqa: T201
    return 0


def reconciled_with(settings: BotSettings) -> str:
    """What ``reconcile`` compared: the ledger with Telegram, and the TON chain when Gram is on."""
    if settings.ton_wallet is None:
        return "ledger and Telegram"
    return "ledger, Telegram and the TON chain"


def run_audit(settings: BotSettings) -> int:
    """Check every charge; print problems and totals; exit 1 if any charge does not prove."""
    from bot.audit import audit, report_lines  # noqa: PLC0415 -- see run_bot

    try:
        report = run_command_loop(audit(settings))
    except StorageError as exc:
        print(storage_failure(settings, exc), file=sys.stderr)  # noqa: T201
        return 2
    for line in report_lines(report):
        print(line)  # noqa: T201 -- the command's report
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(process_main(main))
