"""The tests outside tests/uvloop/ run on asyncio's own loop: the gateway's other choice."""

import asyncio


async def test_the_tests_outside_the_uvloop_folder_run_on_asyncio_s_own_loop() -> None:
    assert type(asyncio.get_running_loop()).__module__.startswith("asyncio")
