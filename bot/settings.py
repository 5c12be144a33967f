"""Bot settings, read from ``VEIL_*`` environment variables (and an optional ``.env``)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.settings import MOST_TOKENS, MOST_UNITS, ListenHost, LogLevel, NamedPath
from sealed.encoding import b64d
from sealed.errors import MalformedMessage
from services.prices import Prices
from services.shop import Pack, Plan
from services.ton.chain import USDT_MAINNET_MASTER, WalletAddress
from services.ton.shop import TonPack
from services.ton.toncenter import MAINNET_URL, TESTNET_URL

_ED25519_KEY_BYTES = 32
# What Telegram accepts in X-Telegram-Bot-Api-Secret-Token (1-256 of these), at least 32 long.
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{32,256}", re.ASCII)
MAKE_A_SECRET = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"  # noqa: S105 -- a command


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
# An origin a page may be framed by: scheme, host and an optional port, nothing else.
ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:\d{1,5})?/?", re.ASCII)


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _operator_keys(value: str) -> str:
    """``value`` when each of its keys is an Ed25519 verify key in base64url."""
    for key in _split(value):
        try:
            raw = b64d(key)
        except MalformedMessage as exc:
            raise ValueError(f"not base64url; {_WHERE_VERIFY_KEYS}") from exc
        if len(raw) != _ED25519_KEY_BYTES:
            raise ValueError(
                f"an operator verify key is 32 bytes in base64url; {_WHERE_VERIFY_KEYS}"
            )
    return value


def _most_units(what: str, *amounts: int) -> None:
    """Refuse an amount of credit or coin past ``MOST_UNITS``, as every such setting is.

    A pack's or a price's was taken at any size: a pack of 10**22 µ★ was sold, and its
    payment then failed to be booked, each time (SQLite's integers end below 2**63).
    """
    if any(amount > MOST_UNITS for amount in amounts):
        raise ValueError(f"{what}: an amount of credit or coin is at most {MOST_UNITS:_}")


# Where a newcomer finds the key (a key file's path, or the key file's line, was told only
# "not base64url").
_WHERE_VERIFY_KEYS = (
    "give the verify key python -m gateway keygen printed, not its key file"
    " (beside scripts/run: the line in data/operator.pub)"
)


# VEIL_UPDATES_IN_HAND's default (``bot.intake``): bench/chat.py at 500 answers at once
# (docs/benchmarks.md, "Memory per concurrent answer").
IN_HAND = 64


class BotSettings(BaseSettings):
    """Everything ``python -m bot`` reads from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="VEIL_", env_file=".env", extra="ignore", allow_inf_nan=False
    )

    bot_token: SecretStr
    telegram_api: AnyHttpUrl = AnyHttpUrl("https://api.telegram.org")
    gateways: str = "http://127.0.0.1:8600"
    operator_keys: str
    retired_operator_keys: str = ""
    data_dir: NamedPath = Path("data")
    master_key_file: NamedPath | None = None
    client_key_file: NamedPath | None = None
    gateway_streams: int = Field(default=256, ge=1, le=100_000)
    updates_in_hand: int = Field(default=IN_HAND, ge=1, le=100_000)
    gateway_wait: float = Field(default=10.0, gt=0, le=300)
    stop_grace: float = Field(default=10.0, gt=0, le=300)
    admins: str = ""
    default_model: str | None = None
    system_prompt: str | None = None
    context_tokens: int = Field(default=4096, ge=256, le=MOST_TOKENS)
    max_answer_tokens: int = Field(default=1024, ge=16, le=MOST_TOKENS)
    min_answer_tokens: int = Field(default=64, ge=1, le=MOST_TOKENS)
    max_answer_seconds: float = Field(default=600.0, gt=0, le=86_400)
    db_busy_timeout: float = Field(default=5.0, gt=0, le=600)
    draft_interval: float = Field(default=1.0, ge=0.2, le=60)
    # A private answer's final message Telegram did not take (a 5xx, the network) goes again
    # after this many seconds, doubled each try: 1, 2, 4, 8 (bot.streaming.delivered).
    final_retry_wait: float = Field(default=1.0, gt=0, le=60)
    show_reasoning: bool = True
    rich_messages: bool = True
    conversation_titles: bool = True
    edit_interval: float = Field(default=3.0, ge=0.2, le=60)
    group_messages_per_minute: float = Field(default=20.0, gt=0, le=6000)
    notice_seconds: float = Field(default=30.0, gt=0, le=86_400)
    webhook_url: AnyHttpUrl | None = None
    webhook_secret: SecretStr | None = Field(default=None, validate_default=True)
    webhook_host: ListenHost = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=0, le=65535)
    webhook_body_timeout: float = Field(default=10.0, gt=0, le=600)
    webapp_url: AnyHttpUrl | None = None
    webapp_host: ListenHost = "127.0.0.1"
    webapp_port: int = Field(default=8480, ge=0, le=65535)
    webapp_max_age: int = Field(default=3600, ge=60, le=7 * 86_400)
    webapp_frame_ancestors: str = ""
    webapp_client_timeout: float = Field(default=30.0, gt=0, le=600)
    # The webhook's and the Mini App's listeners: a request head (and an idle keep-alive
    # connection) gets this long; each listener holds this many connections at most.
    bot_header_timeout: float = Field(default=10.0, gt=0, le=600)
    bot_max_connections: int = Field(default=1024, ge=1, le=1_000_000)
    log_level: LogLevel = "INFO"
    bot_metrics_host: ListenHost = "127.0.0.1"
    bot_metrics_port: int = Field(default=9601, ge=0, le=65535)
    shutdown_grace: float = Field(default=30.0, ge=0, le=3600)
    # A long-polling bot whose polls all meet 409 (another process polls with its token) for
    # this long stops (bot.conflict).
    poll_conflict_limit: float = Field(default=60.0, ge=0, le=86_400)
    prices: str = "*=20/60"
    free_tokens_per_day: int = Field(default=2000, ge=0, le=MOST_TOKENS)
    star_packs: str = "50:50000000,250:275000000,1000:1200000000"
    plan_stars: int = Field(default=300, ge=0, le=10000)
    plan_units: int = Field(default=400_000_000, ge=1, le=MOST_UNITS)
    paysupport_text: str | None = None
    terms_text: str | None = None
    # Gram and USDT on TON (off while VEIL_TON_ADDRESS is empty); testnet first: the address
    # is checked against it.
    ton_testnet: bool = False
    ton_address: str = ""
    ton_usdt: bool = False
    ton_usdt_master: str = USDT_MAINNET_MASTER
    toncenter_url: AnyHttpUrl | None = None
    toncenter_key: SecretStr | None = None
    ton_packs: str = "1000000000:250000000,5000000000:1300000000,20000000000:5500000000"
    ton_usdt_packs: str = "1000000:70000000,5000000:375000000,20000000:1600000000"
    ton_dust: int = Field(default=10_000_000, ge=1, le=MOST_UNITS)
    ton_usdt_dust: int = Field(default=10_000, ge=1, le=MOST_UNITS)
    ton_order_ttl: int = Field(default=3600, ge=60, le=30 * 86_400)
    ton_poll_interval: float = Field(default=10.0, gt=0, le=3600)

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """Refuse a webhook without a strong secret: aiogram skips the check for an empty one."""
        secret = value.get_secret_value() if value is not None else ""
        if not secret and info.data.get("webhook_url") is None:
            return None
        if not WEBHOOK_SECRET.fullmatch(secret):
            raise ValueError(
                "a webhook needs a secret of 32 to 256 characters of A-Z, a-z, 0-9, _ and -;"
                f" make one with {MAKE_A_SECRET}"
            )
        return value

    @field_validator("webapp_url")
    @classmethod
    def _webapp_url(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:
        """Telegram opens Mini Apps over HTTPS only; plain HTTP is for this machine's tests.

        The page is served at the URL's path, which must end in ``/`` (its API is relative to
        it: ``/app`` would open a page that asks ``/api/…``, and the server serves ``/app/``),
        with no query or fragment (Telegram appends the launch data as the fragment).
        """
        if value is None:
            return value
        if value.scheme != "https" and value.host not in _LOOPBACK:
            raise ValueError("the Mini App must be served over https:// (Telegram requires it)")
        if not (value.path or "/").endswith("/") or value.query or value.fragment:
            raise ValueError(
                "the Mini App's URL must end in / and have no ?query or #fragment"
                " (https://veil.example.com/app/, say)"
            )
        return value

    @field_validator("webapp_frame_ancestors")
    @classmethod
    def _frame_ancestors(cls, value: str) -> str:
        """Origins besides Telegram's that may frame the page: HTTPS, or HTTP to this machine."""
        for origin in value.split():
            parsed = urlsplit(origin)
            if (
                parsed.scheme not in {"https", "http"}
                or not parsed.hostname
                or parsed.path not in {"", "/"}
                or parsed.query
                or parsed.fragment
                or not ORIGIN.fullmatch(origin)
                or (parsed.scheme == "http" and parsed.hostname not in _LOOPBACK)
            ):
                raise ValueError(
                    f"{origin!r} is not an origin like https://host[:port] (http: 127.0.0.1 only)"
                )
        return " ".join(o.rstrip("/") for o in value.split())

    @field_validator("prices")
    @classmethod
    def _prices(cls, value: str) -> str:
        table = Prices.parse(value)
        for model, price in [("*", table.default), *table.models.items()]:
            _most_units(f"the price of {model!r}", price.input, price.output)
        return value

    @field_validator("star_packs")
    @classmethod
    def _packs(cls, value: str) -> str:
        packs = Pack.parse_list(value)
        if not packs:
            raise ValueError("at least one pack, as stars:units")
        for pack in packs:
            _most_units(f"the {pack.stars} Stars pack", pack.units)
        return value

    @field_validator("ton_address", "ton_usdt_master")
    @classmethod
    def _ton_address(cls, value: str, info: ValidationInfo) -> str:
        """A bad address stops start-up here, before anything is sold or watched."""
        if info.field_name == "ton_usdt_master" and not info.data.get("ton_usdt"):
            return value.strip()  # checked only when USDT is sold
        if value.strip():
            WalletAddress.parse(value, testnet=bool(info.data.get("ton_testnet")))
        elif info.field_name == "ton_usdt_master":
            raise ValueError("the USDT master address is required when VEIL_TON_USDT is on")
        return value.strip()

    @field_validator("ton_packs", "ton_usdt_packs")
    @classmethod
    def _ton_packs(cls, value: str, info: ValidationInfo) -> str:
        packs = TonPack.parse_list(value, "gram")
        if not packs:
            raise ValueError(f"at least one pack, as amount:units ({info.field_name})")
        for pack in packs:
            _most_units(f"the {pack.amount} pack", pack.amount, pack.units)
        return value

    @property
    def ton_wallet(self) -> WalletAddress | None:
        """``VEIL_TON_ADDRESS`` parsed, or None when Gram payments are off."""
        if not self.ton_address:
            return None
        return WalletAddress.parse(self.ton_address, testnet=self.ton_testnet)

    @property
    def usdt_master(self) -> WalletAddress | None:
        """The real USDT master when ``VEIL_TON_USDT`` is on, else None."""
        if not self.ton_usdt:
            return None
        return WalletAddress.parse(self.ton_usdt_master, testnet=self.ton_testnet)

    @property
    def ton_pack_list(self) -> list[TonPack]:
        """The Gram packs, and the USDT packs when USDT is on."""
        packs = TonPack.parse_list(self.ton_packs, "gram")
        if self.ton_usdt:
            packs += TonPack.parse_list(self.ton_usdt_packs, "usdt")
        return packs

    @property
    def toncenter(self) -> str:
        """The toncenter base URL: ``VEIL_TONCENTER_URL``, else mainnet's or testnet's."""
        if self.toncenter_url is not None:
            return str(self.toncenter_url)
        return TESTNET_URL if self.ton_testnet else MAINNET_URL

    @property
    def price_table(self) -> Prices:
        """``VEIL_PRICES`` parsed."""
        return Prices.parse(self.prices)

    @property
    def packs(self) -> list[Pack]:
        """``VEIL_STAR_PACKS`` parsed."""
        return Pack.parse_list(self.star_packs)

    @property
    def plan(self) -> Plan | None:
        """The monthly plan, or None when ``VEIL_PLAN_STARS`` is 0."""
        return Plan(self.plan_stars, self.plan_units) if self.plan_stars else None

    @field_validator("bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        bot_id, _, secret = value.get_secret_value().partition(":")
        if not bot_id.isdigit() or not secret:
            raise ValueError("expected the form <bot id>:<secret> that BotFather gives")
        return value

    @field_validator("gateways")
    @classmethod
    def _gateway_urls(cls, value: str) -> str:
        urls = _split(value)
        if not urls:
            raise ValueError("at least one gateway URL is required")
        for url in urls:
            AnyHttpUrl(url)
        return value

    @field_validator("operator_keys")
    @classmethod
    def _verify_keys(cls, value: str) -> str:
        if not _split(value):
            raise ValueError("at least one operator verify key is required")
        return _operator_keys(value)

    @field_validator("retired_operator_keys")
    @classmethod
    def _retired_keys(cls, value: str) -> str:
        return _operator_keys(value)

    @field_validator("admins")
    @classmethod
    def _admin_ids(cls, value: str) -> str:
        """Users' ids: ASCII digits, above 0.

        ``isdigit`` alone took ``³`` (then a traceback at start, from ``int``), and a group's
        or channel's negative id, which no user who writes to the bot ever has: that admin
        could never use an admin command, and nothing said why.
        """
        for part in _split(value):
            if part.startswith("-") and part[1:].isascii() and part[1:].isdigit():
                raise ValueError(
                    f"{part} is a group's or channel's id; an admin is a user: their own id"
                    " (a whole number above 0)"
                )
            if not (part.isascii() and part.isdigit() and int(part) > 0):
                raise ValueError("Telegram user ids, comma-separated")
        return value

    @property
    def gateway_urls(self) -> list[str]:
        """``VEIL_GATEWAYS`` as a list."""
        return _split(self.gateways)

    @property
    def verify_keys(self) -> list[bytes]:
        """``VEIL_OPERATOR_KEYS`` decoded."""
        return [b64d(key) for key in _split(self.operator_keys)]

    @property
    def audit_keys(self) -> list[bytes]:
        """The keys ``audit`` checks stored bundles under: the pinned ones and the retired ones.

        A rotation takes the old operator key out of ``VEIL_OPERATOR_KEYS``, but the charges
        made before it still prove under the bundles that key signed.
        """
        return [*self.verify_keys, *(b64d(key) for key in _split(self.retired_operator_keys))]

    @property
    def admin_ids(self) -> frozenset[int]:
        """``VEIL_ADMINS`` as ids."""
        return frozenset(int(part) for part in _split(self.admins))

    @property
    def database_path(self) -> Path:
        """The SQLite file."""
        return self.data_dir / "veil.db"

    @property
    def journal_path(self) -> Path:
        """The payment journal (a file of its own, written before updates are acknowledged)."""
        return self.data_dir / "journal.db"

    @property
    def client_key_path(self) -> Path:
        """The client key file that signs every request to the gateways."""
        return self.client_key_file or self.data_dir / "client.key"

    @property
    def master_key_path(self) -> Path:
        """The master key file (generated on first start when not given)."""
        return self.master_key_file or self.data_dir / "master.key"
