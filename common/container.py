"""The container image's entry point: ``python -m common.container PART [ARGS…]``.

The image (``Dockerfile``) runs one part of Veil per container:

- ``gateway``, ``bot``, ``playground``: ``python -m PART ARGS…``, after reading settings from
  files (below). The part replaces this process (``exec``), so signals reach it directly and its
  exit code is the container's. The playground (the local Telegram) is dev-only: only the
  Dockerfile's ``playground`` target holds it, and the product image refuses it in one line.
- ``keys --gateway DIR --bot DIR --model DIR``: make the keys on the first run (the operator key
  in the gateway's folder, the bot's client key in the bot's, an API key for the model server in
  the model server's) and write beside each the settings that pin the other side; compose's
  one-shot ``keys`` service. Later runs make nothing and rewrite only those settings.
- ``health [gateway|bot]``: exit 0 when ``VEIL_HEALTH_URL`` answers 200, else the part's own
  ``/health`` at the address and port its settings give its listener (default: the gateway's);
  the image's ``HEALTHCHECK``, and compose's bot's with ``bot``.

Settings from files: every file named ``VEIL_<NAME>`` in the folders that ``VEIL_ENV_DIRS``
lists (colon-separated; default ``/run/secrets``, where Docker mounts secrets) sets that variable
to its content, unless the environment sets it already. Only ``VEIL_*`` names are read, so a
file can never set ``PATH`` or ``LD_PRELOAD``; an empty file sets nothing.

A bot without a token: when ``VEIL_BOT_TOKEN`` is still unset and ``VEIL_PLAYGROUND_URL`` names
a playground, the bot waits for that playground and talks to it, as ``scripts/run`` does, and
takes Gram payments on the playground's emulated toncenter (``playground_ton_settings``). Not
for ``--help``, ``keygen``, ``backup``, ``audit`` or settings the bot refuses anyway: those
answer at once. Whether it refuses them is its own check, run in a child and bounded
(``SETTINGS_CHECK_SECONDS``).

A bot's stop period: compose gives the bot ``stop_grace_period`` (``VEIL_BOT_STOP_PERIOD``
seconds, 90 unless set) after SIGTERM before it kills it, and hands the bot the same variable.
Compose cannot add settings up, so the entry point checks the rule the launcher follows: the
period must hold ``VEIL_SHUTDOWN_GRACE`` + ``VEIL_STOP_GRACE`` + ``BOT_STOP_SLACK_S``. A bot
given less (a raised grace, the period left as it was) refuses to start in one line naming
both, rather than being killed while it settles answers at every stop. Only the serving bot is
checked: a command (``bot audit``, ``bot backup FILE``) ends by itself and is never stopped.

Standard library only: the health check runs this module every few seconds.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from common.durable import sync_folder

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

PLAYGROUND_TOKEN = "123456:PLAYGROUND"  # noqa: S105 -- the local emulator's token, not a secret
PARTS = ("gateway", "bot", "playground")
USAGE = "usage: python -m common.container {gateway|bot|playground|keys|health} [ARGS…]"
PLAYGROUND_WAIT_SECONDS = 120.0
# The bot's settings check (``bot_takes_settings``) takes a second or two; a bound, not a wait.
SETTINGS_CHECK_SECONDS = 60.0
# The playground's receiving wallet: a testnet address nobody holds the key of (the raw form is
# 0:sha256("veil playground wallet")); payments to it exist only on the emulated toncenter.
PLAYGROUND_TON_ADDRESS = "0QBwuwPJeQqtP5Sr2if0jluS9BNopNkOvKUlWLMcxaaWfWDi"
PLAYGROUND_TON_POLL_SECONDS = "1"
# The USDT master the playground's emulated chain knows (playground/toncenter.py's USDT_MASTER,
# the real one), in raw form: a raw address carries no network flag, so the playground's testnet
# bot takes it, where the mainnet EQ… default stopped it (VEIL_TON_USDT=1 scripts/run).
PLAYGROUND_USDT_MASTER = "0:b113a994b5024a16719f69139328eb759596c38a25f59028b146fecdc3621dfe"
_SETTING_NAME = re.compile(r"VEIL_[A-Z0-9_]+")
# The bot's own settings check, run in a child (``bot_takes_settings``): exit 0 when it takes them.
_BOT_SETTINGS_CHECK = (
    "from bot.settings import BotSettings; from common.settings import load_settings;"
    " load_settings(BotSettings)"
)
# The bot's stop: its VEIL_SHUTDOWN_GRACE and VEIL_STOP_GRACE defaults, and the slack after the
# stops for settling, storing and closing (as launcher.chain's BOT_STOP_SLACK_S).
BOT_SHUTDOWN_GRACE_S = 30.0
BOT_STOP_GRACE_S = 10.0
BOT_STOP_SLACK_S = 45.0
_HTTP_OK = 200


class ContainerError(Exception):
    """A part cannot start as configured; the message says why."""


def say(message: str) -> None:
    """One progress line on stderr: the container's log, or the run command's terminal."""
    print(f"veil: {message}", file=sys.stderr, flush=True)  # noqa: T201 -- the entry point's voice


def settings_from_files(env: Mapping[str, str], folders: Sequence[Path]) -> dict[str, str]:
    """The ``VEIL_*`` settings that files in ``folders`` give and ``env`` does not set yet.

    The first folder that holds a name wins; a missing folder gives nothing.
    """
    found: dict[str, str] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            name = path.name
            if not _SETTING_NAME.fullmatch(name) or name in env or name in found:
                continue
            if not path.is_file():
                continue
            try:
                value = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ContainerError(f"cannot read the setting file {path}") from exc
            if value:
                found[name] = value
    return found


def env_folders(env: Mapping[str, str]) -> list[Path]:
    """The folders ``VEIL_ENV_DIRS`` names (``/run/secrets`` when unset)."""
    text = env.get("VEIL_ENV_DIRS", "/run/secrets")
    return [Path(part) for part in text.split(":") if part]


def playground_settings(env: Mapping[str, str], within: float) -> dict[str, str]:
    """For a bot without a token: the playground's URL and token, once it answers."""
    if env.get("VEIL_BOT_TOKEN"):
        return {}
    url = env.get("VEIL_PLAYGROUND_URL", "").rstrip("/")
    if not url:
        return {}
    say(f"no bot token: using the Telegram playground at {url}")
    deadline = time.monotonic() + within
    while not answers(url + "/"):
        if time.monotonic() > deadline:
            raise ContainerError(
                f"no bot token and no playground at {url}: put the token from @BotFather in the"
                " file VEIL_BOT_TOKEN_FILE names, or start the playground (--profile playground)"
            )
        time.sleep(0.5)
    return {"VEIL_BOT_TOKEN": PLAYGROUND_TOKEN, "VEIL_TELEGRAM_API": url} | (
        playground_ton_settings(env, url)
    )


def asks_for_help(args: Sequence[str]) -> bool:
    """Whether a part's ``args`` ask for its usage (``-h``/``--help``): answered at once."""
    return "-h" in args or "--help" in args


def bot_playground_settings(env: Mapping[str, str], args: Sequence[str]) -> dict[str, str]:
    """``playground_settings`` for the bot, when they give it settings it takes.

    ``keygen`` gets none: it needs no Telegram and waited for the playground all the same;
    ``backup`` and ``audit`` get them without waiting for it.

    A bot whose settings are wrong anyway (a grace of "soon", a level the logs do not know)
    is started at once, with the playground's settings but without waiting for it: it says
    its own one line for the setting, where it used to say it after waiting for a playground
    that was never started.
    """
    if env.get("VEIL_BOT_TOKEN") or not env.get("VEIL_PLAYGROUND_URL"):
        return {}
    url = env["VEIL_PLAYGROUND_URL"].rstrip("/")
    if not url.startswith(("http://", "https://")):  # the bot would name VEIL_TELEGRAM_API
        raise ContainerError(f"setting VEIL_PLAYGROUND_URL is not an http(s) URL: {url}")
    given = {"VEIL_BOT_TOKEN": PLAYGROUND_TOKEN, "VEIL_TELEGRAM_API": url}
    given |= playground_ton_settings(env, url)
    if args[:1] == ["keygen"]:  # makes a key file: no Telegram, no settings
        return {}
    if args[:1] in (["backup"], ["audit"]):
        # They read the data folder alone: the token the settings want, no playground waited
        # for (the backup operations.md runs with exec waited 2 minutes, then failed, while
        # the playground was down).
        return given
    if not bot_takes_settings({**env, **given}):
        return given
    return playground_settings(env, PLAYGROUND_WAIT_SECONDS)


def bot_takes_settings(env: Mapping[str, str], within: float = SETTINGS_CHECK_SECONDS) -> bool:
    """Whether the bot takes the settings in ``env`` (its own check, in a child of its own).

    A child: ``common`` does not import the bot, and the health check keeps this module light.
    One that has not ended within ``within`` seconds is killed and the start refused in one
    line: a check hung (a stalled disk under the image's Python) hung the container for ever,
    saying nothing.
    """
    try:
        checked = subprocess.run(  # noqa: S603 -- our own interpreter and modules
            [sys.executable, "-c", _BOT_SETTINGS_CHECK],
            capture_output=True,
            env=dict(env),
            check=False,
            timeout=within,
        )
    except subprocess.TimeoutExpired:
        raise ContainerError(
            f"the bot's settings check (python -c 'load_settings(BotSettings)') did not end"
            f" within {within:g} s, so the bot was not started: is the disk under the image"
            " stalled?"
        ) from None
    return checked.returncode == 0


def playground_ton_settings(env: Mapping[str, str], url: str) -> dict[str, str]:
    """Gram payments on the playground at ``url``: its testnet wallet and emulated toncenter.

    Nothing when ``VEIL_TON_ADDRESS`` is set, even empty: the person's own TON settings win (an
    empty address keeps Gram payments off). The watcher looks every second unless
    ``VEIL_TON_POLL_INTERVAL`` says otherwise; USDT (``VEIL_TON_USDT=1``) is the chain's master
    unless ``VEIL_TON_USDT_MASTER`` says otherwise.
    """
    if "VEIL_TON_ADDRESS" in env:
        return {}
    return {
        "VEIL_TON_ADDRESS": PLAYGROUND_TON_ADDRESS,
        "VEIL_TON_TESTNET": "1",
        "VEIL_TONCENTER_URL": url.rstrip("/") + "/toncenter",
        "VEIL_TON_POLL_INTERVAL": env.get("VEIL_TON_POLL_INTERVAL") or PLAYGROUND_TON_POLL_SECONDS,
        "VEIL_TON_USDT_MASTER": env.get("VEIL_TON_USDT_MASTER") or PLAYGROUND_USDT_MASTER,
    }


def answers(url: str, timeout: float = 4.0) -> bool:
    """True when ``url`` answers 200 within ``timeout`` seconds."""
    if not url.startswith(("http://", "https://")):
        raise ContainerError(f"not an http(s) URL: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 -- checked above
            return bool(response.status == _HTTP_OK)
    except (urllib.error.URLError, OSError, ValueError):
        return False


# Where each part serves its ``/health``: the settings naming its listener's address and port,
# and their defaults (the gateway's public listener; the bot's operations listener).
HEALTH_LISTENERS = {
    "gateway": ("VEIL_GATEWAY_HOST", "127.0.0.1", "VEIL_GATEWAY_PORT", "8600"),
    "bot": ("VEIL_BOT_METRICS_HOST", "127.0.0.1", "VEIL_BOT_METRICS_PORT", "9601"),
}
_ANY_ADDRESS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 -- compared, never bound


def health_url(env: Mapping[str, str], part: str = "gateway") -> str:
    """What the health check asks: ``VEIL_HEALTH_URL``, else ``part``'s own ``/health``.

    ``part``'s is read from the settings its listener binds by, so it follows them: compose's
    bot named its URL apart (``VEIL_HEALTH_URL``, port 9601), and a ``VEIL_BOT_METRICS_PORT``
    set in an override or a ``.env`` moved the listener but not the URL, so a working bot was
    marked unhealthy. A listener on every address is asked on loopback.
    """
    if env.get("VEIL_HEALTH_URL"):
        return env["VEIL_HEALTH_URL"]
    host_name, host_default, port_name, port_default = HEALTH_LISTENERS[part]
    host = env.get(host_name, host_default).strip()
    host = "127.0.0.1" if host in _ANY_ADDRESS else host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address in a URL
    return f"http://{host}:{env.get(port_name) or port_default}/health"


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically and durably, readable by its owner only.

    Synced before the rename and the folder after it: a power cut leaves the old file or the
    new one, never an empty file under its name. A folder its file system cannot sync
    (``EINVAL``) keeps the name as it keeps any other.
    """
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(fd)
    temporary.replace(path)
    sync_folder(path.parent)


def ensure_signing_key(
    module: str, kind: str, key_file: Path, env: Mapping[str, str], public: Path | None = None
) -> str:
    """Make ``key_file`` with ``python -m MODULE keygen`` unless it exists; its verify key.

    The verify key is kept in ``public``, by default beside it as ``<name>.pub`` (the key file
    holds only the seed), written after the key. The run command keeps its keys so too
    (``launcher.chain.ensure_key``). Killed between the two (a power cut), the key stayed
    without it and every later run refused it; the ``.pub`` is now derived from the key again.
    The reverse, a ``.pub`` whose key is gone, made a second key silently, which no side that
    pinned the first trusts: it is refused, and nothing is changed. A ``.pub`` that is not the
    key's (one of the two replaced by hand, or restored from different backups) was taken as it
    stood and pinned on the other side, where every signature then failed, first at the first
    request: it is refused in one line too, each run checking it against the key.
    """
    public = key_file.with_suffix(".pub") if public is None else public
    if not key_file.exists():
        if public.exists():
            raise ContainerError(
                f"{public} exists but {key_file} does not: the {kind} key it verifies is gone;"
                f" put {key_file} back from its backup, or remove {public} to make a new {kind}"
                " key (and pin its verify key again wherever the old one was pinned)"
            )
        say(f"creating the {kind} key {key_file}")
        made = _signing_key_child(
            [sys.executable, "-m", module, "keygen", "--out", str(key_file)], env
        )
        if made.returncode != 0:
            raise ContainerError(f"could not create the {kind} key: {made.stderr.strip()}")
        write_private(public, made.stdout.strip() + "\n")
        return made.stdout.strip()
    derived = _signing_key_child([sys.executable, "-c", VERIFY_KEY_OF, module, str(key_file)], env)
    if not public.is_file():
        if derived.returncode != 0:
            raise ContainerError(
                f"{public} is missing and cannot be made again from {key_file}:"
                f" {derived.stderr.strip()}"
            )
        write_private(public, derived.stdout.strip() + "\n")
        say(f"{public} was missing: made again from {key_file}")
    elif derived.returncode != 0:
        raise ContainerError(f"{key_file} cannot be read: {derived.stderr.strip()}")
    elif public.read_text(encoding="utf-8", errors="replace").strip() != derived.stdout.strip():
        raise ContainerError(mismatch(kind, key_file, public))
    return derived.stdout.strip()


def mismatch(kind: str, key_file: Path, public: Path) -> str:
    """The one line refusing a ``.pub`` that is not ``key_file``'s verify key."""
    return (
        f"{public} is not the verify key of {key_file}: one of the two was replaced; put back"
        f" the {kind} key and its .pub from the same backup, or remove {public} to make it again"
        " from the key (and pin that verify key wherever the old one was pinned)"
    )


# The verify key of a key file, printed: ``python -c VERIFY_KEY_OF MODULE KEY_FILE`` (a child,
# as this module imports nothing but the standard library). The file is read as the part reads
# it: a key of another kind, or one others may read, is refused in one line.
VERIFY_KEY_OF = """
import sys
from pathlib import Path
from sealed import keyfile
header = {"gateway": keyfile.OPERATOR_KEY_HEADER, "bot": keyfile.CLIENT_KEY_HEADER}
try:
    key = keyfile.read_key_file(Path(sys.argv[2]), header[sys.argv[1]])
except keyfile.KeyFileError as exc:
    sys.exit(str(exc))
print(keyfile.verify_key_text(key))
"""


def _signing_key_child(
    command: list[str], env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` (this interpreter, our own code) to its end; its output as text."""
    return subprocess.run(  # noqa: S603 -- our own interpreter and module
        command, capture_output=True, text=True, env=dict(env), check=False
    )


def make_keys(gateway: Path, bot: Path, model: Path, env: Mapping[str, str]) -> None:
    """Make the missing keys and (re)write the settings that pin them on the other side."""
    for folder in (gateway, bot, model):
        if not folder.is_dir():
            raise ContainerError(f"{folder} is not a folder (mount the keys volumes)")
    operator = ensure_signing_key("gateway", "operator", gateway / "operator.key", env)
    client = ensure_signing_key("bot", "client", bot / "client.key", env)
    api_key_file = model / "api-key"
    if not api_key_file.exists():
        say(f"creating the model server's API key {api_key_file}")
        # Hex, not base64url: a key that starts with "-" would be read as an option by any
        # command line it is passed on (vLLM's --api-key, for one).
        write_private(api_key_file, secrets.token_hex(32) + "\n")
    api_key = api_key_file.read_text(encoding="ascii").strip()
    write_private(gateway / "VEIL_CLIENT_KEYS", f"bot:{client}\n")
    write_private(gateway / "VEIL_VLLM_API_KEY", api_key + "\n")
    write_private(bot / "VEIL_OPERATOR_KEYS", operator + "\n")
    say(f"operator verify key: {operator}")
    say(f"client verify key:   {client}")


def run_keys(args: Sequence[str], env: Mapping[str, str]) -> int:
    """``keys --gateway DIR --bot DIR --model DIR``."""
    parser = argparse.ArgumentParser(prog="python -m common.container keys")
    parser.add_argument("--gateway", type=Path, required=True, help="the gateway's key folder")
    parser.add_argument("--bot", type=Path, required=True, help="the bot's key folder")
    parser.add_argument("--model", type=Path, required=True, help="the model server's key folder")
    options = parser.parse_args(args)
    make_keys(options.gateway, options.bot, options.model, env)
    return 0


def check_stop_period(env: Mapping[str, str]) -> None:
    """Refuse a bot whose ``VEIL_BOT_STOP_PERIOD`` (compose's stop period) its graces outlast.

    Unset (no compose), nothing is checked; a grace that is no finite number is the bot's to
    refuse.
    """
    period_text = env.get("VEIL_BOT_STOP_PERIOD")
    if not period_text:
        return
    try:
        period = float(period_text)
    except ValueError:
        period = math.nan
    if not math.isfinite(period):  # inf and nan are numbers to float(), not to compose
        raise ContainerError(
            f"setting VEIL_BOT_STOP_PERIOD is invalid: whole seconds (compose adds the s),"
            f" not {period_text!r}"
        )
    try:
        grace = float(env.get("VEIL_SHUTDOWN_GRACE") or BOT_SHUTDOWN_GRACE_S)
        stop_grace = float(env.get("VEIL_STOP_GRACE") or BOT_STOP_GRACE_S)
    except ValueError:
        return
    if not (math.isfinite(grace) and math.isfinite(stop_grace)):
        return  # the bot refuses it, naming it: no period would do
    needed = grace + stop_grace + BOT_STOP_SLACK_S
    if period < needed:
        raise ContainerError(
            f"setting VEIL_BOT_STOP_PERIOD is {period:g} s, but VEIL_SHUTDOWN_GRACE ({grace:g})"
            f" and VEIL_STOP_GRACE ({stop_grace:g}) need {needed:g} s or more with"
            f" {BOT_STOP_SLACK_S:g} s to close: set VEIL_BOT_STOP_PERIOD={math.ceil(needed)}"
            " in the shell or the .env beside docker-compose.yml (compose's stop_grace_period"
            " reads it there, never from a service's environment), or compose kills the bot"
            " while it settles answers"
        )


def check_installed(part: str) -> None:
    """Refuse a part this image does not hold (the playground outside its dev-only target)."""
    if importlib.util.find_spec(part) is not None:
        return
    if part == "playground":
        raise ContainerError(
            "the playground is dev-only and not in this image: build the Dockerfile's"
            " `playground` target (docker compose --profile playground does)"
        )
    raise ContainerError(f"{part} is not installed in this image")


def start(part: str, args: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """Replace this process with ``python -m PART ARGS…``."""
    os.execve(sys.executable, [sys.executable, "-m", part, *args], dict(env))  # noqa: S606


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in (*PARTS, "keys", "health"):
        say(USAGE)
        return 2
    part, rest = args[0], args[1:]
    env = dict(os.environ)
    try:
        if part == "health":
            if len(rest) > 1 or (rest and rest[0] not in HEALTH_LISTENERS):
                say("usage: python -m common.container health [gateway|bot]")
                return 2
            url = health_url(env, *rest[:1])
            if answers(url):
                return 0
            say(f"unhealthy: {url} did not answer 200")
            return 1
        env |= settings_from_files(env, env_folders(env))
        if part == "keys":
            return run_keys(rest, env)
        check_installed(part)
        if part == "bot" and not asks_for_help(rest):
            if not rest:  # serving: a command (audit, backup, keygen…) stops by itself
                check_stop_period(env)
            env |= bot_playground_settings(env, rest)
    except ContainerError as exc:
        say(str(exc))
        return 2
    start(part, rest, env)


if __name__ == "__main__":
    sys.exit(main())
