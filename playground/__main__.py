"""``python -m playground``: serve the local Telegram until SIGINT or SIGTERM.

One port serves both sides: the page for a person at ``/`` and the Bot API for the bot under
``/bot<token>/<method>`` (point ``VEIL_TELEGRAM_API`` at the printed URL and ``VEIL_BOT_TOKEN``
at ``--token``), and an emulated toncenter v3 API under ``/toncenter`` (point
``VEIL_TONCENTER_URL`` at ``<url>/toncenter`` for Gram payments the page can simulate).
``--group-limit`` sets Telegram's per-group flood limit (20 sends and edits a
minute; 0 turns it off), ``--ephemeral refused`` or ``ignored`` plays an older Bot API server
without ephemeral messages, and ``--topics`` gives the bot topics in the private chat (Bot API
9.3+: each topic a conversation).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from playground.limits import DEFAULT_PER_MINUTE
from playground.web import TONCENTER_PREFIX, Playground

__all__ = ["main", "serve"]


MOST_PORT = 65535


class CannotListen(Exception):
    """The address ``--host``/``--port`` names could not be listened on (the one line to say)."""


def _at_least_zero(text: str) -> int:
    """``--group-limit``'s value: a whole number of sends a minute, 0 for no limit."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        message = f"a whole number of sends a minute expected, 0 for no limit: {text!r}"
        raise argparse.ArgumentTypeError(message)
    return value


def _port(text: str) -> int:
    """``--port``'s value: a TCP port, 0 for any free one (99999 was a traceback from bind)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MOST_PORT:
        raise argparse.ArgumentTypeError(
            f"a port from 0 to {MOST_PORT} expected, 0 for any: {text!r}"
        )
    return value


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m playground", description="A local Telegram for one bot, in a browser."
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8080, help="listen port (8080; 0: any)")
    parser.add_argument(
        "--token", default="123456:PLAYGROUND", help="the bot token the emulator accepts"
    )
    parser.add_argument(
        "--group-limit",
        type=_at_least_zero,
        default=DEFAULT_PER_MINUTE,
        help="sends and edits a minute the bot may make into one group (20; 0: no limit)",
    )
    parser.add_argument(
        "--ephemeral",
        choices=("yes", "refused", "ignored"),
        default="yes",
        help="ephemeral messages: supported (yes), or an older server that refuses or ignores them",
    )
    parser.add_argument(
        "--topics",
        action="store_true",
        help="the bot has topics in private chats (getMe's has_topics_enabled)",
    )
    return parser.parse_args(argv)


async def serve(  # noqa: PLR0913 -- the command line's options
    host: str,
    port: int,
    token: str,
    *,
    group_limit: int = DEFAULT_PER_MINUTE,
    ephemeral: str = "yes",
    topics: bool = False,
) -> None:
    """Run the playground on ``host:port`` until the process gets SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    playground = Playground(token=token, group_limit=group_limit or None, topics=topics)
    playground.telegram.state.ephemeral_support = ephemeral
    try:
        url = await playground.start(host, port)
    except OSError as exc:  # a port in use, a host that is not this machine's
        await playground.close()
        reason = str(exc.strerror or exc)
        if "attempting to bind" in reason:  # asyncio's "error while attempting to bind on ..."
            reason = reason.rpartition("): ")[2]
        message = f"playground: cannot listen on --host {host} --port {port}: {reason}"
        raise CannotListen(message) from None
    toncenter = url + TONCENTER_PREFIX
    line = f"playground: open {url} (Bot API for the bot: {url}; toncenter: {toncenter})"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await playground.close()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    args = _arguments(argv)
    try:
        asyncio.run(
            serve(
                args.host,
                args.port,
                args.token,
                group_limit=args.group_limit,
                ephemeral=args.ephemeral,
                topics=args.topics,
            )
        )
    except CannotListen as exc:
        sys.stderr.write(f"{exc}\n")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
