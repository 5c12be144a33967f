"""Schema changes, applied in order, each once, each in its own transaction.

A migration is a function that takes the ``Database`` and changes the schema; its name is the
function's name. To change the schema, write a new function and append it to ``MIGRATIONS``;
never edit or reorder one that has shipped. ``apply`` hands the list to sqlite-utils'
``Migrations``, which runs each pending one in a transaction together with its row in
``_sqlite_migrations`` (set ``veil``; the payment journal's file has its own set). Around it,
this module adds three things sqlite-utils leaves to its user:

- a database whose applied migrations are not a prefix of the list (written by newer code, or
  a list that was reordered) is refused with ``StorageError`` before anything changes;
- ``PRAGMA user_version`` mirrors the number applied, for tools that only look there;
- a database made before sqlite-utils kept the record (a ``_migrations`` table of names and
  Unix times) has its record moved into ``_sqlite_migrations`` first, in one transaction, so it
  upgrades like any other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from sqlite_utils import Database, Migrations

from models.errors import StorageError

__all__ = [
    "MIGRATIONS",
    "MIGRATION_SET",
    "Database",
    "Migration",
    "applied",
    "applied_at",
    "apply",
    "check_current",
    "schema_version",
]

Migration = Callable[[Database], None]
MIGRATION_SET = "veil"
RECORD_TABLE = Migrations.migrations_table
_LEGACY_TABLE = "_migrations"  # the record kept before sqlite-utils' Migrations took over


def m0001_history(db: Database) -> None:
    """Users with their wrapped data key, conversations, and sealed turns."""
    db.execute(
        """
        CREATE TABLE users (
            user_id INTEGER PRIMARY KEY,
            language TEXT,
            model TEXT,
            cache_salt TEXT NOT NULL,
            data_key BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            active_conversation INTEGER REFERENCES conversations(id) ON DELETE SET NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
            created_at INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX conversations_user_id ON conversations(user_id)")
    db.execute(
        """
        CREATE TABLE turns (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
            conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
            body BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            UNIQUE (conversation_id, seq)
        )
        """
    )
    db.execute("CREATE INDEX turns_user_id ON turns(user_id)")


def m0002_money(db: Database) -> None:
    """The append-only ledger (µ★), request holds, Stars orders and payments.

    No foreign keys to ``users``: money records outlive a user's ``/forget``.
    """
    db.execute(
        """
        CREATE TABLE ledger (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('purchase', 'usage', 'refund', 'grant', 'free',
                                               'hold', 'release', 'subscription')),
            amount INTEGER NOT NULL,
            source TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL,
            note TEXT
        )
        """
    )
    db.execute("CREATE INDEX ledger_user_id ON ledger(user_id, id)")
    for action in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER ledger_no_{action.lower()} BEFORE {action} ON ledger"
            " BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END"
        )
    db.execute(
        """
        CREATE TABLE holds (
            request_id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL,
            model TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            max_completion_tokens INTEGER NOT NULL,
            free_tokens INTEGER NOT NULL,
            units INTEGER NOT NULL CHECK (units >= 0),
            price_in INTEGER NOT NULL,
            price_out INTEGER NOT NULL,
            day INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            outcome TEXT CHECK (outcome IN ('settled', 'unverified', 'released', 'recovered')),
            closed_at INTEGER,
            prompt_used INTEGER,
            completion_used INTEGER,
            free_used INTEGER,
            cost INTEGER,
            charged INTEGER
        )
        """
    )
    db.execute("CREATE INDEX holds_user_day ON holds(user_id, day)")
    db.execute("CREATE INDEX holds_open ON holds(created_at) WHERE outcome IS NULL")
    db.execute(
        """
        CREATE TABLE orders (
            id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('pack', 'plan')),
            pack_id TEXT,
            stars INTEGER NOT NULL,
            units INTEGER NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'paid')),
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE payments (
            charge_id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL,
            order_id TEXT NOT NULL,
            stars INTEGER NOT NULL,
            units INTEGER NOT NULL,
            is_recurring INTEGER NOT NULL,
            flagged INTEGER NOT NULL,
            flag_reason TEXT,
            refunded INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            subscription_expires_at INTEGER
        )
        """
    )
    db.execute("CREATE INDEX payments_user_id ON payments(user_id)")


def m0003_estimated_charges(db: Database) -> None:
    """Holds may end ``estimated`` (billed by the bot's own count) and keep the receipt's status.

    SQLite cannot change a CHECK constraint in place, so ``holds`` is rebuilt with its rows.
    """
    db.execute(
        """
        CREATE TABLE holds_v3 (
            request_id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL,
            model TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            max_completion_tokens INTEGER NOT NULL,
            free_tokens INTEGER NOT NULL,
            units INTEGER NOT NULL CHECK (units >= 0),
            price_in INTEGER NOT NULL,
            price_out INTEGER NOT NULL,
            day INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            outcome TEXT CHECK (outcome IN ('settled', 'unverified', 'estimated', 'released',
                                            'recovered')),
            closed_at INTEGER,
            prompt_used INTEGER,
            completion_used INTEGER,
            free_used INTEGER,
            cost INTEGER,
            charged INTEGER,
            receipt_status TEXT CHECK (receipt_status IN ('complete', 'stopped', 'error'))
        )
        """
    )
    columns = (
        "request_id, user_id, model, prompt_tokens, max_completion_tokens, free_tokens, units,"
        " price_in, price_out, day, created_at, outcome, closed_at, prompt_used,"
        " completion_used, free_used, cost, charged"
    )
    db.execute(f"INSERT INTO holds_v3 ({columns}) SELECT {columns} FROM holds")  # noqa: S608 -- a constant column list
    db.execute("DROP TABLE holds")
    db.execute("ALTER TABLE holds_v3 RENAME TO holds")
    db.execute("CREATE INDEX holds_user_day ON holds(user_id, day)")
    db.execute("CREATE INDEX holds_open ON holds(created_at) WHERE outcome IS NULL")


def m0004_usage_proofs(db: Database) -> None:
    """Proof for every charge, kept where nothing can change it.

    ``bundles`` keeps each operator-signed key bundle (exact bytes) that published a receipt
    key; ``usage_receipts`` keeps, per charged request (its id is the sealed request id), the
    receipt's exact signed bytes, signature and verify key, the prices used and what was
    charged. Both refuse UPDATE and DELETE, like the ledger. Charges closed before this
    migration have no row (``python -m bot audit`` lists them as from before receipts were
    kept).
    """
    db.execute(
        """
        CREATE TABLE bundles (
            id TEXT PRIMARY KEY,
            body BLOB NOT NULL,
            signature BLOB NOT NULL,
            operator_key BLOB NOT NULL,
            first_seen INTEGER NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE usage_receipts (
            request_id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL,
            model TEXT NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('settled', 'unverified', 'estimated')),
            receipt BLOB,
            signature BLOB,
            receipt_key BLOB,
            bundle_id TEXT REFERENCES bundles(id),
            price_in INTEGER NOT NULL,
            price_out INTEGER NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            free_tokens INTEGER NOT NULL,
            cost INTEGER NOT NULL,
            charged INTEGER NOT NULL,
            created_at INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX usage_receipts_user_id ON usage_receipts(user_id)")
    for table in ("bundles", "usage_receipts"):
        for action in ("UPDATE", "DELETE"):
            db.execute(
                f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}"
                f" BEGIN SELECT RAISE(ABORT, 'the {table} table is append-only'); END"
            )


def m0005_chat_settings(db: Database) -> None:
    """Settings for answers outside the private chat.

    ``users.inline_history``: the user opted in to inline answers joining their conversation
    (off by default). ``group_settings``: a group admin's choices (a group with no row uses the
    defaults: answers on, reply chains as context on). No text is kept in either.
    """
    db.execute("ALTER TABLE users ADD COLUMN inline_history INTEGER NOT NULL DEFAULT 0")
    db.execute(
        """
        CREATE TABLE group_settings (
            chat_id INTEGER PRIMARY KEY,
            answers INTEGER NOT NULL,
            reply_context INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        )
        """
    )


def m0006_ton_payments(db: Database) -> None:
    """Gram and USDT-on-TON payments: orders, the chain watcher's cursors, payments seen.

    The tables are described in ``models.ton``, which reads and writes them.
    """
    db.execute(
        """
        CREATE TABLE ton_orders (
            id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL,
            language TEXT,
            asset TEXT NOT NULL CHECK (asset IN ('gram', 'usdt')),
            pack_id TEXT NOT NULL,
            amount INTEGER NOT NULL CHECK (amount > 0),
            units INTEGER NOT NULL CHECK (units > 0),
            created_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX ton_orders_user_id ON ton_orders(user_id)")
    db.execute(
        """
        CREATE TABLE ton_cursors (
            stream TEXT PRIMARY KEY CHECK (stream IN ('gram', 'usdt')),
            since INTEGER NOT NULL,
            lt INTEGER,
            hash TEXT,
            updated_at INTEGER NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE ton_payments (
            hash TEXT PRIMARY KEY,
            asset TEXT NOT NULL CHECK (asset IN ('gram', 'usdt')),
            lt INTEGER NOT NULL,
            utime INTEGER NOT NULL,
            sender TEXT,
            amount INTEGER NOT NULL CHECK (amount >= 0),
            comment TEXT,
            order_id TEXT,
            status TEXT NOT NULL CHECK (status IN ('credited', 'unmatched', 'dust')),
            reason TEXT,
            late INTEGER NOT NULL DEFAULT 0,
            user_id INTEGER,
            units INTEGER NOT NULL DEFAULT 0 CHECK (units >= 0),
            rate_amount INTEGER CHECK (rate_amount > 0),
            rate_units INTEGER CHECK (rate_units > 0),
            created_at INTEGER NOT NULL,
            credited_at INTEGER,
            assigned_by INTEGER,
            notified INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    db.execute("CREATE INDEX ton_payments_order_id ON ton_payments(order_id)")
    db.execute("CREATE INDEX ton_payments_status ON ton_payments(status, created_at)")


def m0007_conversation_topics(db: Database) -> None:
    """Conversations gain where they live and what they are called.

    ``thread_id``: the private chat's topic (Bot API 9.3+) the conversation is, or NULL for one
    in the chat itself (one topic, one conversation of its user). ``title``: its short name
    from the model, sealed under the user's data key like a turn (``models.atrest``), NULL
    until named. ``updated_at``: when a turn last joined it, for /history's order (an older
    conversation counts from its newest turn, or from its start).
    """
    db.execute("ALTER TABLE conversations ADD COLUMN thread_id INTEGER")
    db.execute("ALTER TABLE conversations ADD COLUMN title BLOB")
    db.execute("ALTER TABLE conversations ADD COLUMN updated_at INTEGER")
    db.execute(
        "UPDATE conversations SET updated_at = COALESCE("
        "(SELECT MAX(created_at) FROM turns WHERE conversation_id = conversations.id),"
        " created_at)"
    )
    db.execute(
        "CREATE UNIQUE INDEX conversations_thread ON conversations(user_id, thread_id)"
        " WHERE thread_id IS NOT NULL"
    )
    db.execute("CREATE INDEX conversations_recent ON conversations(user_id, updated_at)")


def m0008_hold_chats(db: Database) -> None:
    """Where an answer in progress is being written, so a restart can say it was cut off.

    One row per open hold of an answer in a private chat (``thread_id``: its topic, NULL for
    the chat itself), deleted when the hold closes: nothing of it is kept after the answer.
    """
    db.execute(
        """
        CREATE TABLE hold_chats (
            request_id TEXT PRIMARY KEY REFERENCES holds(request_id),
            chat_id INTEGER NOT NULL,
            thread_id INTEGER
        )
        """
    )


def m0009_order_approvals(db: Database) -> None:
    """When a Stars order's pre-checkout was approved (Unix time), NULL until it is.

    A payment approved before its order expired is not "expired" however late Telegram's
    ``successful_payment`` (or its booking) comes.
    """
    db.execute("ALTER TABLE orders ADD COLUMN approved_at INTEGER")


def m0010_ton_late_transfers(db: Database) -> None:
    """What the watcher needs to read the USDT stream again a little behind its cursor.

    ``ton_cursors.utime``: the chain time of the cursor's transaction (the re-read window is
    counted back from it); a cursor saved before takes its payment's time, else the time it
    was saved (a little later than its transaction: the first window is that much shorter).
    ``ton_skipped``: the transfers the watcher read and skipped (another jetton, a forged
    wallet, aborted), by transaction hash, so one read again is not checked or logged again;
    kept a day (``models.ton.purge_skipped``).
    """
    db.execute("ALTER TABLE ton_cursors ADD COLUMN utime INTEGER")
    db.execute(
        "UPDATE ton_cursors SET utime = COALESCE("
        "(SELECT p.utime FROM ton_payments p WHERE p.hash = ton_cursors.hash), updated_at)"
        " WHERE lt IS NOT NULL"
    )
    db.execute(
        """
        CREATE TABLE ton_skipped (
            hash TEXT PRIMARY KEY,
            asset TEXT NOT NULL CHECK (asset IN ('gram', 'usdt')),
            lt INTEGER NOT NULL,
            reason TEXT NOT NULL,
            created_at INTEGER NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX ton_skipped_created_at ON ton_skipped(created_at)")


def m0011_turn_tokens(db: Database) -> None:
    """An upper count of a turn's tokens and the model it counts for; NULL where none is known.

    Set for an answer whose signed receipt gave the model's own count (``services.tokens``),
    so a conversation's older turns are counted by the model's tokens, not by their bytes,
    when the history is fitted to the window for that model. A number about a turn's length,
    as its sealed body's size already is; a turn without one counts by its bytes.
    """
    db.execute("ALTER TABLE turns ADD COLUMN tokens INTEGER CHECK (tokens >= 0)")
    db.execute("ALTER TABLE turns ADD COLUMN tokens_model TEXT")


def m0012_early_refunds(db: Database) -> None:
    """Refunds booked while the ledger had no payment for their charge id (it came later).

    A refund Telegram reports before its payment (updates that overtook each other, or two
    replicas booking the two at the same moment) finds nothing to take back; it is kept here,
    in the refund's own transaction, so the payment's booking, in its own, takes the credit
    back at once. One SQLite write lock orders the two: whichever comes second sees the other.
    """
    db.execute(
        """
        CREATE TABLE early_refunds (
            charge_id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL,
            created_at INTEGER NOT NULL
        )
        """
    )


def m0013_ton_named_orders(db: Database) -> None:
    """The orders a TON payment's comment named (their ids, comma-separated), NULL for none.

    The whole comment is matched, but only its first ``COMMENT_MAX`` characters are kept: an
    id further on decided the payment where the admins could not see it.
    """
    db.execute("ALTER TABLE ton_payments ADD COLUMN named TEXT")


def m0014_ton_notice_claims(db: Database) -> None:
    """Until when a watcher holds the right to tell a TON payment's user (NULL: nobody does).

    Webhook replicas each run the watcher on one database: the one that claims the notice
    tells it, so a user is told once, not once per replica.
    """
    db.execute("ALTER TABLE ton_payments ADD COLUMN notice_claimed_until INTEGER")


def m0015_ton_skipped_facts(db: Database) -> None:
    """What a skipped transfer brought and whose it was, so the audit can list it usefully.

    ``amount`` in the asset's smallest unit, as text (a forged jetton's amount can be past an
    SQLite integer); ``sender`` in raw form. NULL for those remembered before.
    """
    db.execute("ALTER TABLE ton_skipped ADD COLUMN amount TEXT")
    db.execute("ALTER TABLE ton_skipped ADD COLUMN sender TEXT")


def m0016_orders_by_user(db: Database) -> None:
    """An index on the Stars orders' user: a new order counts the user's open ones first."""
    db.execute("CREATE INDEX orders_user_id ON orders(user_id)")


def m0017_undelivered(db: Database) -> None:
    """Answers charged whose final message Telegram is not known to have taken (``models.outbox``).

    Written in the charge's transaction, deleted once Telegram took the message: a restart
    delivers what is left. The text is sealed with the user's data key (``body``); the rest
    names where it goes: ``surface`` (a private chat, a chat's message to edit, an inline one).
    """
    db.execute(
        """
        CREATE TABLE undelivered (
            request_id TEXT PRIMARY KEY REFERENCES holds(request_id),
            user_id INTEGER NOT NULL,
            surface TEXT NOT NULL CHECK (surface IN ('private', 'message', 'inline')),
            chat_id INTEGER,
            thread_id INTEGER,
            message_id INTEGER,
            inline_message_id TEXT,
            body BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            claimed_until INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    db.execute("CREATE INDEX undelivered_user_id ON undelivered(user_id)")


def m0018_undelivered_progress(db: Database) -> None:
    """The messages of a long private answer Telegram took (``models.outbox.Progress``).

    A long answer is several messages: when Telegram refuses one for now (a long flood wait),
    those before it went out, and a delivery pass sends only the rest. Counts alone.
    """
    db.execute("ALTER TABLE undelivered ADD COLUMN rich_taken INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE undelivered ADD COLUMN parts_taken INTEGER NOT NULL DEFAULT 0")


def m0019_undelivered_finish(db: Database) -> None:
    """What a private answer sent again needs to look like the live one (``models.outbox.Finish``).

    ``reply_to``: the question's message id, which the answer replies to; ``ending``: how it
    ended (``models.outbox.Ending``: cut at its limit, broken off...), which says the note and
    button under it; ``retry``: the key that button carries. Ids and a word: the text stays
    sealed in ``body``.
    """
    db.execute("ALTER TABLE undelivered ADD COLUMN reply_to INTEGER")
    db.execute("ALTER TABLE undelivered ADD COLUMN ending TEXT")
    db.execute("ALTER TABLE undelivered ADD COLUMN retry TEXT")


def m0020_undelivered_notes(db: Database) -> None:
    """The notes under a private answer sent again that Telegram took (``models.outbox.Progress``).

    Counted as its messages are: a bot killed after Telegram took the note and before the row
    was deleted sent it again at its next start, under an answer shown once. A count alone.
    """
    db.execute("ALTER TABLE undelivered ADD COLUMN notes_taken INTEGER NOT NULL DEFAULT 0")


def m0021_ids_not_reused(db: Database) -> None:
    """Conversation ids are never given out twice; an order's latest approval is kept too.

    ``conversations.id`` is an INTEGER PRIMARY KEY without AUTOINCREMENT, so SQLite gave the
    largest id again once its row was deleted (``/forget``), and a /history button from before
    opened the conversation that took it. ``id_marks`` keeps the highest id ever given out
    (a trigger raises it on every insert) and a new conversation takes the next one
    (``models.store``, which takes the write lock before it reads the mark, so the bot and
    another process starting conversations at once neither read the same mark nor fail on a
    lock they cannot upgrade to): what AUTOINCREMENT does, without rebuilding the table, which the
    foreign keys of ``users`` and ``turns`` (enforced in this transaction) would have
    followed or cascaded through. An id deleted before this migration is not known: the mark
    starts at the largest id there is.

    ``orders.last_approved_at``: an order's latest pre-checkout approval, which the window of
    ``being_paid`` runs from (``approved_at`` stays the first).
    """
    db.execute("CREATE TABLE id_marks (name TEXT PRIMARY KEY, high INTEGER NOT NULL)")
    db.execute(
        "INSERT INTO id_marks (name, high)"
        " SELECT 'conversations', COALESCE(MAX(id), 0) FROM conversations"
    )
    db.execute(
        "CREATE TRIGGER conversations_id_mark AFTER INSERT ON conversations BEGIN"
        " UPDATE id_marks SET high = NEW.id WHERE name = 'conversations' AND high < NEW.id;"
        " END"
    )
    db.execute("ALTER TABLE orders ADD COLUMN last_approved_at INTEGER")
    db.execute("UPDATE orders SET last_approved_at = approved_at")


def m0022_ton_chain_since(db: Database) -> None:
    """Where a stream's first read begins by toncenter's clock (``ton_cursors.chain_since``).

    ``since`` is a time of the bot's clock; a bot fast when its stream began reads from
    earlier by its lead on toncenter's clock. Kept only in memory, a restart with the clock set
    right read from ``since`` again, in the chain's future, and passed over the payments made
    between (``services.ton.reader``). None until a lead moved the first read back.
    """
    db.execute("ALTER TABLE ton_cursors ADD COLUMN chain_since INTEGER")


def m0023_plan_cancels(db: Database) -> None:
    """Each refunded subscription's cancellation, stored: owed, done, or failed and why.

    The cancellation (``editUserStarSubscription(is_canceled=True)``) followed the refund's
    booking in memory only: a crash between the two skipped it for good, the admin's /refund
    and Telegram's report of it both sent it, and ``reconcile`` could not tell whether a
    refunded plan still charged. One row per subscription (its plan order and user),
    ``charge_id`` the refunded payment that owes it, ``named`` the charge Telegram was asked
    by last, ``unnamed`` set when Telegram said that charge names no subscription. The plan
    refunds booked before are owed once: the next upkeep asks again (a cancelled one stays so),
    but only for a subscription that may still renew: one whose latest period (of any of its
    payments) ended more than a day ago (``services.shop.RENEWAL_GRACE_S``) without a renewal
    has lapsed; asked about it, Telegram may refuse, and ``reconcile`` would report that
    refusal for good (a /refund again cannot clear it).
    """
    db.execute(
        "CREATE TABLE plan_cancels (order_id TEXT NOT NULL, user_id INTEGER NOT NULL,"
        " charge_id TEXT NOT NULL, state TEXT NOT NULL CHECK (state IN ('owed', 'done', 'failed')),"
        " reason TEXT, named TEXT, unnamed INTEGER NOT NULL DEFAULT 0,"
        " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,"
        " PRIMARY KEY (order_id, user_id))"
    )
    db.execute(
        "INSERT INTO plan_cancels (order_id, user_id, charge_id, state, created_at, updated_at)"
        " SELECT p.order_id, p.user_id, MIN(p.charge_id), 'owed', MAX(p.created_at),"
        " MAX(p.created_at) FROM payments p WHERE p.is_recurring = 1 AND p.refunded = 1"
        " GROUP BY p.order_id, p.user_id HAVING COALESCE((SELECT MAX(q.subscription_expires_at)"
        " FROM payments q WHERE q.order_id = p.order_id AND q.user_id = p.user_id), 1e18)"
        " + 86400 > CAST(strftime('%s', 'now') AS INTEGER)"
    )


MIGRATIONS: list[Migration] = [
    m0001_history,
    m0002_money,
    m0003_estimated_charges,
    m0004_usage_proofs,
    m0005_chat_settings,
    m0006_ton_payments,
    m0007_conversation_topics,
    m0008_hold_chats,
    m0009_order_approvals,
    m0010_ton_late_transfers,
    m0011_turn_tokens,
    m0012_early_refunds,
    m0013_ton_named_orders,
    m0014_ton_notice_claims,
    m0015_ton_skipped_facts,
    m0016_orders_by_user,
    m0017_undelivered,
    m0018_undelivered_progress,
    m0019_undelivered_finish,
    m0020_undelivered_notes,
    m0021_ids_not_reused,
    m0022_ton_chain_since,
    m0023_plan_cancels,
]


def applied(db: Database, migration_set: str = MIGRATION_SET) -> list[str]:
    """Return the names of the set's migrations applied to ``db``, oldest first."""
    return [migration.name for migration in Migrations(migration_set).applied(db)]


def applied_at(db: Database, name: str, migration_set: str = MIGRATION_SET) -> int | None:
    """When the migration ``name`` was applied to ``db`` (Unix seconds), or None if it was not."""
    for migration in Migrations(migration_set).applied(db):
        if migration.name == name:
            return int(dt.datetime.fromisoformat(migration.applied_at).timestamp())
    return None


def schema_version(db: Database, migration_set: str = MIGRATION_SET) -> int:
    """Return how many of the set's migrations ``db`` has had applied."""
    return len(applied(db, migration_set))


def apply(
    db: Database,
    migrations: Sequence[Migration] = MIGRATIONS,
    migration_set: str = MIGRATION_SET,
) -> list[str]:
    """Apply the pending ``migrations`` in order and return the names newly applied.

    Each runs in a transaction with the record of it (sqlite-utils' ``Migrations``), so a
    migration that raises leaves no trace and stays pending. A database whose applied
    migrations are not a prefix of ``migrations`` is refused with ``StorageError`` before
    anything changes.
    """
    names = [migration.__name__ for migration in migrations]
    if len(set(names)) != len(names):
        raise ValueError("migration names must be unique")
    registered = Migrations(migration_set)
    for position, migration in enumerate(migrations, start=1):
        registered(name=migration.__name__)(_counted(migration, position))
    legacy = _legacy_record(db)
    done = [name for name, _ in legacy] if legacy else applied(db, migration_set)
    if done != names[: len(done)]:
        raise StorageError(
            "the database's applied migrations do not match this code's list "
            f"({len(done)} applied); refusing to guess"
        )
    if legacy is not None:
        _adopt(db, registered, legacy)
    registered.apply(db)
    return names[len(done) : len(applied(db, migration_set))]


def check_current(
    db: Database,
    migrations: Sequence[Migration] = MIGRATIONS,
    migration_set: str = MIGRATION_SET,
) -> None:
    """Refuse (``StorageError``) a database that has not had exactly ``migrations`` applied.

    For a database opened for reading only, which cannot be brought up to date: code that
    reads it expects this list's schema.
    """
    done = [] if _legacy_record(db) is not None else applied(db, migration_set)
    names = [migration.__name__ for migration in migrations]
    if done == names:
        return
    if done == names[: len(done)]:
        raise StorageError(
            f"the database has {len(done)} of this code's {len(names)} migrations applied,"
            " and it is opened for reading only: start the bot where it can write, once"
        )
    raise StorageError(
        "the database's applied migrations do not match this code's list "
        f"({len(done)} applied); refusing to guess"
    )


def newer_than_code(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> int | None:
    """How many migrations ``db`` has had applied, when more than this code knows; else None.

    Read from ``PRAGMA user_version`` (which each migration sets to its position): cheap
    enough for every write transaction, so a process of older code still running beside newer
    code that has migrated the database (a rolling upgrade) stops writing by rules the schema
    has outgrown.
    """
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    return version if version > len(migrations) else None


def _counted(migration: Migration, position: int) -> Migration:
    """``migration``, then ``user_version`` set to its position, in the same transaction."""

    def counted(db: Database) -> None:
        migration(db)
        db.execute(f"PRAGMA user_version = {position:d}")

    counted.__name__ = migration.__name__
    return counted


def _legacy_record(db: Database) -> list[tuple[str, int]] | None:
    """The ``_migrations`` record (name, Unix time) of a database made before, if it has one."""
    if _LEGACY_TABLE not in db.table_names():
        return None
    rows = db.execute(f"SELECT name, applied_at FROM {_LEGACY_TABLE} ORDER BY rowid")  # noqa: S608 -- a constant table name
    return [(str(name), int(applied_time)) for name, applied_time in rows.fetchall()]


def _adopt(db: Database, migrations: Migrations, legacy: list[tuple[str, int]]) -> None:
    """Move the legacy record into ``_sqlite_migrations``, times kept, in one transaction."""
    with db.atomic():
        migrations.ensure_migrations_table(db)
        db.table(RECORD_TABLE).insert_all(
            {
                "migration_set": migrations.name,
                "name": name,
                "applied_at": str(dt.datetime.fromtimestamp(applied_time, tz=dt.UTC)),
            }
            for name, applied_time in legacy
        )
        db.execute(f"DROP TABLE {_LEGACY_TABLE}")
