"""``python -m gateway``: serve sealed inference; ``keygen``: make an operator key."""

from __future__ import annotations

from common.firstlines import capture_warnings

# Run as ``python -m gateway``: before the rest is imported, so that a warning raised while it
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
from sealed.keyfile import OPERATOR_KEY_HEADER, keygen_command

# ``keygen --out FILE`` needs none of the rest (aiohttp, settings, the server): made before it
# is imported. Its other spellings (``--out=FILE``) go through the parser below.
if __name__ == "__main__" and (keygen := keygen_command(sys.argv[1:], OPERATOR_KEY_HEADER)):
    sys.exit(process_main(keygen))

import argparse
import asyncio
import contextlib
import errno
import inspect
import resource
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import structlog

from common.collector import freeze_startup
from common.connections import bind_failure
from common.logs import configure_logging
from common.settings import SettingsError, load_settings
from common.stopping import stoppable
from gateway.clients import parse_client_keys
from gateway.descriptors import AcceptErrorFilter
from gateway.keys import (
    KeyRing,
    OperatorKeyError,
    read_operator_key,
)
from gateway.routes import Listeners, listen
from gateway.server import UPSTREAM_SPARE, Gateway, rotate_forever
from gateway.settings import GatewaySettings
from gateway.vllm import VLLMClient
from sealed.keyfile import keygen_run
from sealed.suites import Suite

if TYPE_CHECKING:
    from collections.abc import Callable

log = structlog.get_logger("veil.gateway")

# How often the listeners are looked at (``Listeners.closed``); a look is a few system calls.
LISTENER_CHECK_S = 5.0


async def serve(settings: GatewaySettings) -> int:
    """Run the gateway until SIGINT or SIGTERM (0), or until its listener is gone (1)."""
    try:
        operator = read_operator_key(settings.operator_key_file)
    except OperatorKeyError as exc:
        raise SettingsError(f"veil: setting VEIL_OPERATOR_KEY_FILE: {exc}") from None
    try:
        clients = parse_client_keys(
            settings.client_keys,
            default_streams=settings.max_streams,
            default_max_tokens=settings.max_completion_tokens,
        )
    except ValueError as exc:
        raise SettingsError(f"veil: setting VEIL_CLIENT_KEYS is invalid: {exc}") from None
    own = operator.public_key().public_bytes_raw()
    for client in clients.values():
        if client.verify_key == own:
            # The two keygens' printed keys swapped: the gateway would take requests signed by
            # its own operator key, and refuse the bot's every request with 401.
            raise SettingsError(
                f"veil: setting VEIL_CLIENT_KEYS is invalid: client {client.name} is this"
                " gateway's own operator verify key; pin the key python -m bot keygen printed"
            )
    suite = Suite.X25519 if settings.gateway_suite == "x25519" else Suite.MLKEM768_X25519
    api_key = settings.vllm_api_key.get_secret_value() if settings.vllm_api_key else None
    if api_key and settings.vllm_url.username:
        raise SettingsError(
            "veil: setting VEIL_VLLM_URL has a user name and VEIL_VLLM_API_KEY is set: use one"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(AcceptErrorFilter())
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # One upstream connection per stream: the pool must not be smaller than the stream cap.
    connector = aiohttp.TCPConnector(limit=settings.max_streams + UPSTREAM_SPARE)
    limits = settings.limits
    async with aiohttp.ClientSession(connector=connector) as session:
        gateway = Gateway(
            ring=KeyRing(
                operator,
                suite=suite,
                rotation_seconds=settings.key_rotation_seconds,
                grace_seconds=settings.key_grace_seconds,
                now=0,
            ),
            vllm=VLLMClient(
                str(settings.vllm_url),
                api_key,
                session,
                idle_timeout=limits.backend_idle_timeout,
            ),
            clients=clients,
            max_streams=settings.max_streams,
            max_skew=settings.max_clock_skew,
            fixed_models=settings.served_models,
            limits=limits,
            multimodal_models=settings.vision_models,
            shaping=settings.shaping,
        )
        gateway.ring.rotate(gateway.now())
        await gateway.refresh_models()
        listeners = await _listen(gateway, settings)
        rotation = asyncio.create_task(rotate_forever(gateway, settings.key_rotation_seconds))
        watch = asyncio.create_task(_watch_listener(listeners, stop))
        log.info(
            "gateway.started",
            url=listeners.url,
            metrics_url=listeners.metrics_url,
            max_connections=listeners.max_connections,
            suite=suite.label,
            key_id=gateway.ring.current.keypair.key_id.hex(),
            models=list(gateway.ring.models),
            windows=dict(gateway.ring.windows),
            stream_shape=settings.stream_shape.value,
            stream_tick=settings.stream_tick,
            loop=type(loop).__module__.partition(".")[0],  # the loop running: asyncio or uvloop
            frozen_objects=freeze_startup(),
        )
        try:
            await stop.wait()
        finally:
            listener_gone = watch.done() and not watch.cancelled()
            for task in (rotation, watch):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await listeners.close()
            log.info("gateway.stopped")
    return 1 if listener_gone else 0


async def _watch_listener(listeners: Listeners, stop: asyncio.Event) -> None:
    """Set ``stop`` once a listener takes no connections any more, said in one line.

    On uvloop an ``accept()`` failure libuv leaves to Python (ENOBUFS, ENOMEM, EPERM) closes
    the listener for good and says nothing (``site_listening``): the gateway ran on,
    reachable by no one, its ``/health`` refused, and nothing restarted it. It stops now, its
    streams ended with stopped receipts, and exits 1, so that compose's restart policy (or
    any supervisor) starts it again.

    The metrics listener too: one that died left the gateway serving but unseen (its
    ``/metrics`` refused, every alert on it blind, or firing with no cause named) until someone
    restarted it by hand, and nothing else could bring it back. A restart, which the restart
    policy makes at once, is the one way back; its price is the streams running then, which end
    with stopped receipts (charged for what was sent), as at any restart.
    """
    closed = None
    while closed is None:
        await asyncio.sleep(LISTENER_CHECK_S)
        closed = listeners.closed()
    listener, url = closed
    log.error("gateway.listener_closed", listener=listener, url=url)
    stop.set()


async def _listen(gateway: Gateway, settings: GatewaySettings) -> Listeners:
    """Start both listeners, or stop with one line naming the address that is taken."""
    try:
        return await listen(
            gateway,
            host=settings.gateway_host,
            port=settings.gateway_port,
            metrics_host=settings.metrics_host,
            metrics_port=settings.metrics_port,
        )
    except OSError as exc:
        listeners = [
            ("VEIL_GATEWAY", settings.gateway_host, settings.gateway_port),
            ("VEIL_METRICS", settings.metrics_host, settings.metrics_port),
        ]
        raise SettingsError(bind_failure(listeners, exc)) from None


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``VEIL_GATEWAY_LOOP`` names (None: asyncio's own).

    uvloop cut the wait of a burst of requests on a many-core machine (docs/benchmarks.md:
    "On 16 cores"); it is a dependency wherever it builds (not on Windows), and asyncio's loop
    remains the choice where it is not, or where an operator prefers it.
    """
    if name == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415 -- only where it is chosen; absent on Windows
    except ImportError:
        raise SettingsError(
            "veil: setting VEIL_GATEWAY_LOOP is uvloop, but uvloop is not installed here: "
            "install it, or set VEIL_GATEWAY_LOOP=asyncio"
        ) from None
    return uvloop.new_event_loop


def run_loop(settings: GatewaySettings) -> int:
    """Serve on the event loop ``VEIL_GATEWAY_LOOP`` names, or stop with one line.

    uvloop needs descriptors to start (a socket pair for its signals): under a limit as low as
    ``ulimit -n 12`` it failed with EMFILE, and closing it then raised "Cannot close a running
    event loop" over that: a ``process.crashed`` traceback saying ``RuntimeError`` and nothing
    of the limit. asyncio's loop starts there.
    """
    runner = asyncio.Runner(loop_factory=loop_factory(settings.gateway_loop))
    main = serve(settings)
    loop: asyncio.AbstractEventLoop | None = None
    try:
        with runner:
            loop = runner.get_loop()
            return runner.run(main)
    except (OSError, RuntimeError) as exc:
        started = inspect.getcoroutinestate(main) != inspect.CORO_CREATED
        if started or not _out_of_descriptors(exc):
            raise
        # Its task never ran: no "never awaited" warning, no "destroyed but it is pending!".
        main.close()
        if loop is not None:
            loop.set_exception_handler(lambda _loop, _context: None)
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        raise SettingsError(
            f"veil: the {settings.gateway_loop} event loop could not start: no file descriptor"
            f" left under the process's limit ({limit}, ulimit -n); raise the limit"
        ) from None


def _out_of_descriptors(exc: BaseException) -> bool:
    """Whether ``exc`` came of running out of file descriptors (EMFILE, ENFILE) on its way."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in {errno.EMFILE, errno.ENFILE}:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    capture_early()  # a warning while the settings are read is a JSON line too
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    keygen = commands.add_parser("keygen", help="write a new operator key file (mode 0600)")
    keygen.add_argument("--out", type=Path, required=True, help="where to write the key file")
    commands.add_parser("serve", help="serve sealed inference (the default)")
    args = parser.parse_args(argv)
    if args.command == "keygen":
        return keygen_run(args.out, OPERATOR_KEY_HEADER)
    # Serving: a stop asked for before the event loop takes the signals is one line, and exit 0.
    return stoppable(_serve, "veil.gateway", "gateway.stopped_before_start")


def _serve() -> int:
    try:
        settings = load_settings(GatewaySettings)
        configure_logging(settings.log_level)
        return run_loop(settings)
    except SettingsError as exc:
        print(exc.code, file=sys.stderr)  # noqa: T201 -- one clear line for the operator
        return 2


if __name__ == "__main__":
    sys.exit(process_main(main))
