"""``python -m gateway``: serve sealed inference; ``keygen``: make an operator key."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import aiohttp
import structlog
from aiohttp import web

from gateway.keys import (
    KeyRing,
    OperatorKeyError,
    read_operator_key,
    verify_key_text,
    write_operator_key,
)
from gateway.logs import configure_logging
from gateway.server import Gateway, build_app, rotate_forever
from gateway.settings import GatewaySettings, SettingsError, load_settings
from gateway.vllm import VLLMClient
from sealed.suites import Suite

log = structlog.get_logger("veil.gateway")


async def serve(settings: GatewaySettings) -> None:
    """Run the gateway until SIGINT or SIGTERM."""
    try:
        operator = read_operator_key(settings.operator_key_file)
    except OperatorKeyError as exc:
        raise SettingsError(f"veil: setting VEIL_OPERATOR_KEY_FILE: {exc}") from None
    suite = Suite.X25519 if settings.gateway_suite == "x25519" else Suite.MLKEM768_X25519
    api_key = settings.vllm_api_key.get_secret_value() if settings.vllm_api_key else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # One upstream connection per stream: the pool must not be smaller than the stream cap.
    connector = aiohttp.TCPConnector(limit=settings.max_streams + 8)
    async with aiohttp.ClientSession(connector=connector) as session:
        gateway = Gateway(
            ring=KeyRing(
                operator,
                suite=suite,
                rotation_seconds=settings.key_rotation_seconds,
                grace_seconds=settings.key_grace_seconds,
                now=0,
            ),
            vllm=VLLMClient(str(settings.vllm_url), api_key, session),
            max_streams=settings.max_streams,
            max_skew=settings.max_clock_skew,
            fixed_models=settings.served_models,
        )
        gateway.ring.rotate(gateway.now())
        await gateway.refresh_models()
        runner = web.AppRunner(build_app(gateway), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, settings.gateway_host, settings.gateway_port)
        await site.start()
        port = runner.addresses[0][1] if runner.addresses else settings.gateway_port
        rotation = asyncio.create_task(rotate_forever(gateway, settings.key_rotation_seconds))
        log.info(
            "gateway.started",
            url=f"http://{settings.gateway_host}:{port}",
            suite=suite.label,
            key_id=gateway.ring.current.keypair.key_id.hex(),
            models=list(gateway.ring.models),
        )
        try:
            await stop.wait()
        finally:
            rotation.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rotation
            await runner.cleanup()
            log.info("gateway.stopped")


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    keygen = commands.add_parser("keygen", help="write a new operator key file (mode 0600)")
    keygen.add_argument("--out", type=Path, required=True, help="where to write the key file")
    commands.add_parser("serve", help="serve sealed inference (the default)")
    args = parser.parse_args(argv)
    if args.command == "keygen":
        try:
            key = write_operator_key(args.out)
        except OperatorKeyError as exc:
            print(f"veil: {exc}", file=sys.stderr)  # noqa: T201 -- a CLI's answer
            return 1
        print(verify_key_text(key))  # noqa: T201 -- the verify key is public; it is the output
        return 0
    try:
        settings = load_settings(GatewaySettings)
        configure_logging(settings.log_level)
        asyncio.run(serve(settings))
    except SettingsError as exc:
        print(exc.code, file=sys.stderr)  # noqa: T201 -- one clear line for the operator
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
